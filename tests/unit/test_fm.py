import numpy as np
import pytest

from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.data.splits import label_indices, make_splits, part
from fmops_pipelines.errors import SpecError
from fmops_pipelines.fm.base import Prompt
from fmops_pipelines.fm.exploration import (
    ABSTAIN,
    CalibratedPrompt,
    anchor_ids,
    calibrated_prompts,
    candidate_prompts,
    explore_prompts,
)
from fmops_pipelines.fm.factory import build_fm
from fmops_pipelines.spec import load_spec
from tests.conftest import small_sms_spec, write_task


@pytest.fixture(scope="module")
def sms_slice(tmp_path_factory):
    spec = load_spec(write_task(tmp_path_factory.mktemp("assets"), "sms_spam", small_sms_spec()))
    return spec, make_splits(load_dataset(spec), spec.splits)


def test_prompt_identity_is_its_content():
    a = Prompt("This SMS is {label}.", ("ham", "spam"))
    assert a.id == Prompt("This SMS is {label}.", ("ham", "spam")).id
    assert a.id != Prompt("This SMS is {label}!", ("ham", "spam")).id
    assert a.label_texts() == ["This SMS is ham.", "This SMS is spam."]


def test_candidates_are_templates_times_verbalizer_sets():
    prompts = candidate_prompts(["{label}", "It is {label}"], [["a", "b", "c"], ["x"]])
    assert len(prompts) == 6
    assert prompts[1].verbalizers == ("b", "x")


def test_embedding_scores_and_cache(minilm):
    texts = ["WINNER!! Claim your free prize, call 09061701461 now", "are we still on for dinner tonight?"]
    prompt = Prompt("{label}", ("a casual personal message between friends", "an advertisement offering a free prize"))
    before = minilm.stats.calls
    scores = minilm.score(texts, prompt)
    assert scores.shape == (2, 2)
    assert scores[0, 1] > scores[0, 0] and scores[1, 0] > scores[1, 1]
    assert minilm.stats.calls - before == 4  # two texts + two label prompts
    hits = minilm.stats.cache_hits
    assert np.allclose(minilm.score(texts, prompt), scores, atol=1e-6)
    assert minilm.stats.calls - before == 4 and minilm.stats.cache_hits == hits + 4


def test_the_default_batch_is_the_devices_and_gives_the_embeddings_of_any_other(minilm, sms_slice):
    """fm.batch_size unset: 16 texts a pass on CPU (as fast as 64 there, a third of its memory), 64 on a GPU; the
    batch only changes how texts are padded together, not what each one's embedding is."""
    import torch

    from fmops_pipelines.fm.embedding import CPU_BATCH, GPU_BATCH, EmbeddingFM

    texts = sorted(part(sms_slice[1], "train")["text"].tolist(), key=len)[-64:]  # the longest: the most padding
    assert minilm.batch_size is None and minilm.batch == (GPU_BATCH if torch.cuda.is_available() else CPU_BATCH)
    assert build_fm("embedding", "all-MiniLM-L6-v2", None, batch_size=64).batch == 64
    by_default, by_64 = minilm._encode_uncached(texts), EmbeddingFM(batch_size=64)._encode_uncached(texts)
    assert (by_default * by_64).sum(axis=1).min() > 0.99999


def test_bf16_embeddings_are_fp32_s_within_rounding_and_cached_apart(minilm, sms_slice):
    """fm.precision: bf16 encodes under bfloat16 autocast: near-identical embeddings (the labelers' votes rest on
    them), kept under their own cache keys so an fp32 run never reads them."""
    from fmops_pipelines.fm.embedding import EmbeddingFM

    texts = part(sms_slice[1], "train")["text"].tolist()[:48]
    fp32 = minilm.embed(texts)
    bf16_fm = EmbeddingFM(cache=minilm.cache, precision="bf16")
    bf16 = bf16_fm.embed(texts)
    assert bf16_fm.stats.calls == len(texts) and bf16_fm.stats.cache_hits == 0  # not fp32's cached vectors
    assert (fp32 * bf16).sum(axis=1).min() > 0.995 and not np.array_equal(fp32, bf16)
    assert np.array_equal(bf16_fm.embed(texts), bf16) and bf16_fm.stats.cache_hits == len(texts)


def test_onnx_runtime_encodes_as_torch_does_and_int8_is_cached_apart(minilm, sms_slice, tmp_path, monkeypatch):
    """fm.runtime: onnx converts the packaged weights at first use (into the model home, not downloaded) and
    encodes as sentence-transformers does: fp32 within float rounding of torch's; int8 near it, under keys of
    its own, and its converted graph reused by the next process's encoder."""
    from fmops_pipelines.fm.embedding import EmbeddingFM
    from fmops_pipelines.fm.onnx_encoder import converted_path

    monkeypatch.setenv("FMOPS_MODEL_HOME", str(tmp_path / "models"))
    texts = part(sms_slice[1], "train")["text"].tolist()[:40]
    torch_fp32 = minilm.embed(texts)
    onnx_fm = EmbeddingFM(cache=minilm.cache, runtime="onnx")
    onnx_fp32 = onnx_fm.embed(texts)
    assert onnx_fm.stats.cache_hits == 0  # torch's cached vectors are not onnx's answers
    assert (torch_fp32 * onnx_fp32).sum(axis=1).min() > 0.9999
    assert np.allclose(np.linalg.norm(onnx_fp32, axis=1), 1.0, atol=1e-5)
    graph = converted_path(onnx_fm.model_id, onnx_fm.revision, "fp32")
    assert graph.is_file() and graph.is_relative_to(tmp_path / "models")

    int8_fm = EmbeddingFM(cache=minilm.cache, runtime="onnx", precision="int8")
    int8 = int8_fm.embed(texts)
    assert int8_fm.stats.cache_hits == 0 and not np.array_equal(int8, onnx_fp32)
    assert (torch_fp32 * int8).sum(axis=1).mean() > 0.95
    converted = converted_path(onnx_fm.model_id, onnx_fm.revision, "int8")
    assert converted.stat().st_size < graph.stat().st_size
    again = EmbeddingFM(cache=None, runtime="onnx", precision="int8")
    mtime = converted.stat().st_mtime_ns
    # the same batches give the same answers (dynamic int8 scales activations per batch, so other neighbours would not)
    assert np.allclose(again._encode_uncached(texts), int8, atol=1e-5)
    assert converted.stat().st_mtime_ns == mtime  # reused, not converted again


def test_unknown_backend_and_model_are_spec_errors(minilm):
    with pytest.raises(SpecError, match="fm.backend: unknown backend 'gpt'"):
        build_fm("gpt", "x", None)
    with pytest.raises(SpecError, match="fm.model: '/no/such/model' is neither a known model"):
        build_fm("embedding", "/no/such/model", None)


def test_exploration_scores_calibrates_and_selects(minilm, sms_slice):
    spec, splits = sms_slice
    dev, train = part(splits, "dev"), part(splits, "train")
    y_dev = label_indices(dev["label"], spec.label_names)
    candidates = candidate_prompts(spec.prompts.templates, [label.verbalizers for label in spec.labels])
    table = explore_prompts(minilm, candidates, train["text"].tolist()[:300], dev["text"].tolist(), y_dev,
                            spec.label_names, max_labelers=4, min_coverage=0.3)
    assert len(table) == len(candidates) and table["dev_macro_f1"].is_monotonic_decreasing
    assert 1 <= table["selected"].sum() <= 4
    assert (table["coverage"] >= 0.3 - 1e-9).all()
    assert table["dev_accuracy"].iloc[0] > 0.6  # the packaged MiniLM does better than chance on real SMS
    assert not table["anchor"].any()
    anchored = explore_prompts(minilm, candidates, train["text"].tolist()[:300], dev["text"].tolist(), y_dev,
                               spec.label_names, max_labelers=4, min_coverage=0.3, anchor=True)
    top = anchored[anchored["anchor"]]
    assert len(top) == 1 and top["selected"].item() and top["rank"].item() == 1
    assert top["threshold"].item() == 0.0 and top["coverage"].item() == 1.0  # votes on every row
    assert anchor_ids(anchored) == [top["prompt_id"].item()] and anchor_ids(table) == []
    cal = calibrated_prompts(table)[0]
    assert CalibratedPrompt.from_record(cal.to_record()) == cal
    votes = cal.votes(minilm.score(dev["text"].tolist(), cal.prompt))
    assert set(np.unique(votes)) <= {ABSTAIN, 0, 1}


def test_few_shot_candidate_is_scored_out_of_fold_and_round_trips(minilm, sms_slice, tmp_path):
    from fmops_pipelines import storage
    from fmops_pipelines.fm.exploration import FEW_SHOT_TEMPLATE, few_shot_dev_scores, few_shot_prompt

    spec, splits = sms_slice
    dev, train = part(splits, "dev"), part(splits, "train")
    y_dev = label_indices(dev["label"], spec.label_names)
    texts = dev["text"].tolist()
    oof = few_shot_dev_scores(minilm, texts, y_dev, spec.label_names)
    in_sample = minilm.score(texts, few_shot_prompt(texts, y_dev, spec.label_names))
    assert not np.isnan(oof).any()
    # a row scored by centroids that include it looks closer to its own class than it does out of fold
    own = np.arange(len(y_dev)), y_dev
    assert (in_sample[own] - oof[own]).mean() > 0
    table = explore_prompts(minilm, candidate_prompts(spec.prompts.templates[:1], [["a personal message"],
                            ["an advertisement"]]), train["text"].tolist()[:200], texts, y_dev, spec.label_names,
                            max_labelers=4, min_coverage=0.3, few_shot=True)
    assert (table["template"] == FEW_SHOT_TEMPLATE).sum() == 1
    storage.write_value(tmp_path / "scores", table)
    back = calibrated_prompts(storage.read_value(tmp_path / "scores"), selected_only=False)
    shot = next(c for c in back if c.prompt.template == FEW_SHOT_TEMPLATE)
    assert shot.prompt.id == table.loc[table["template"] == FEW_SHOT_TEMPLATE, "prompt_id"].item()
    assert sum(len(e) for e in shot.prompt.examples) == len(texts)
    from fmops_pipelines.supervision.label_matrix import prompt_label_matrix

    matrix = prompt_label_matrix(minilm, [shot], splits)
    dev_votes = matrix.loc[matrix["split"] == "dev", shot.prompt.id].to_numpy()
    assert (dev_votes == shot.votes(oof)).all()  # dev rows: out-of-fold, never graded by their own shot


def test_a_few_shot_probe_labels_held_out_rows_and_is_scored_out_of_fold(minilm, sms_slice):
    """prompts.few_shot_labeler: probe fits a logistic regression on the embeddings of the 60 dev examples:
    on held-out test rows it is as good as the labels' centroids and far above the zero-shot prompts (~0.6
    macro-F1 on sms_spam), its dev scores come from probes fitted without the row, and calibration centres
    no few-shot labeler (that would undo the class balance it learned)."""
    from sklearn.metrics import f1_score

    from fmops_pipelines.fm.exploration import (
        PROBE_TEMPLATE,
        calibrate,
        few_shot_dev_scores,
        few_shot_kind,
        few_shot_prompt,
    )

    spec, splits = sms_slice
    dev, test, train = part(splits, "dev"), part(splits, "test"), part(splits, "train")
    y_dev, y_test = (label_indices(p["label"], spec.label_names) for p in (dev, test))
    shot, centroid = (few_shot_prompt(dev["text"].tolist(), y_dev, spec.label_names, kind) for kind in ("probe", "centroid"))
    assert few_shot_kind(shot) == "probe" and shot.id != centroid.id
    probe, nearest = (minilm.score(test["text"].tolist(), p).argmax(axis=1) for p in (shot, centroid))
    probe_f1, centroid_f1 = (f1_score(y_test, p, average="macro") for p in (probe, nearest))
    assert probe_f1 > 0.75 and abs(probe_f1 - centroid_f1) < 0.05, (probe_f1, centroid_f1)
    oof = few_shot_dev_scores(minilm, dev["text"].tolist(), y_dev, spec.label_names, "probe")
    own = np.arange(len(y_dev)), y_dev
    assert (minilm.score(dev["text"].tolist(), shot)[own] - oof[own]).mean() > 0  # in-sample looks better
    pool = train["text"].tolist()[:200]
    for prompt, dev_scores in ((shot, oof), (centroid, few_shot_dev_scores(minilm, dev["text"].tolist(), y_dev,
                                                                              spec.label_names))):
        assert calibrate(prompt, minilm.score(pool, prompt), dev_scores, y_dev, 0.3).center == (0.0, 0.0)
    zero_shot = Prompt("This SMS is {label}.", ("personal", "an advertisement"))
    assert calibrate(zero_shot, minilm.score(pool, zero_shot), minilm.score(dev["text"].tolist(), zero_shot), y_dev,
                     0.3).center != (0.0, 0.0)
    table = explore_prompts(minilm, [], train["text"].tolist()[:200], dev["text"].tolist(), y_dev, spec.label_names,
                            max_labelers=2, min_coverage=0.3, few_shot=True, few_shot_labeler="probe")
    assert table["template"].tolist() == [PROBE_TEMPLATE]


def test_bf16_where_the_cpu_would_emulate_it_is_named_without_loading_the_model():
    """A spec asking bf16 keeps it, but on a CPU without native bfloat16 autocast ran MiniLM at 0.14x fp32's
    texts/s (a 2-core AVX2 host): the FM says so in one line, before any text is encoded."""
    from fmops_pipelines.fm.embedding import EmbeddingFM, native_bf16

    assert EmbeddingFM(precision="fp32").precision_warning() is None
    assert EmbeddingFM(precision="bf16", device="cuda").precision_warning() is None  # a GPU's bf16 is native
    on_cpu = EmbeddingFM(precision="bf16", device="cpu")
    said = on_cpu.precision_warning()
    assert (said is None) == native_bf16()
    assert said is None or ("fm.precision bf16" in said and "fm.precision: fp32" in said)
    assert on_cpu._model is None

