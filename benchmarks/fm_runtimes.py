"""Which runtime should encode the embedding FM? texts/s and vote agreement with torch fp32, per shipped task.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/fm_runtimes.py sms_spam youtube_spam ag_news \
        [--runtimes torch:fp32 torch:bf16 onnx:fp32 onnx:int8] [--rows N] [--timing-texts 1024]

For every task, each runtime:precision encodes the task's texts (every row of its dataset, or a stratified
`--rows` sample), and every candidate prompt of its spec (templates x verbalizers) votes on every row as the
zero-shot labeler does before calibration: the label whose prompt is nearest. Where FMOPS_HOME holds a finished
run of the task, its calibrated labelers (thresholds, few-shot centroids) vote too, as the weak label matrix
does. A row agrees when all its votes equal torch fp32's. texts/s: the same `--timing-texts` texts (the task's
own, uncached) encoded by each runtime in turn, after a warm-up, all in this one process, so the ratios compare.
Each runtime encodes every row itself, once: its answers go to a throw-away cache that the prompts then read.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.fm.cache import FMCache
from fmops_pipelines.fm.embedding import EmbeddingFM
from fmops_pipelines.fm.exploration import calibrated_prompts, candidates_for
from fmops_pipelines.launcher import quiet_libraries, stored
from fmops_pipelines.spec import get_spec

REFERENCE = "torch:fp32"


def texts_of(task: str, rows: int | None, seed: int = 0) -> list[str]:
    df = load_dataset(get_spec(task))
    if rows and len(df) > rows:
        df = df.groupby("label", group_keys=False).sample(frac=rows / len(df), random_state=seed)
    return df["text"].astype(str).tolist()


def stored_labelers(task: str) -> list:
    table = stored(task, "prompt_scores")  # None without a finished run in this FMOPS_HOME
    return [] if table is None else calibrated_prompts(table)


def votes(fm: EmbeddingFM, texts: list[str], prompts: list, labelers: list) -> np.ndarray:
    """One column per candidate prompt (nearest label) and per calibrated labeler (its vote or abstention)."""
    cols = [fm.score(texts, p).argmax(axis=1) for p in prompts]
    cols += [cal.votes(fm.score(texts, cal.prompt)) for cal in labelers]
    return np.stack(cols, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--runtimes", nargs="+", default=["torch:fp32", "torch:bf16", "onnx:fp32", "onnx:int8"])
    parser.add_argument("--rows", type=int, default=None, help="a stratified sample of each task's rows")
    parser.add_argument("--timing-texts", type=int, default=1024)
    args = parser.parse_args()
    quiet_libraries()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    runtimes = [REFERENCE, *[r for r in args.runtimes if r != REFERENCE]]
    cache = FMCache(Path(tempfile.mkdtemp(prefix="fm_runtimes-")) / "answers.sqlite")  # keyed by runtime, precision
    print(f"{'task':<14} {'runtime':<11} {'texts/s':>8} {'x fp32':>7} {'rows agreeing':>14} {'votes agreeing':>15}")
    for task in args.tasks:
        spec = get_spec(task)
        texts = texts_of(task, args.rows)
        timing = texts[: args.timing_texts]
        prompts, labelers = candidates_for(spec), stored_labelers(task)
        reference, base_rate = None, None
        for name in runtimes:
            runtime, precision = name.split(":")
            fm = EmbeddingFM(spec.fm.model, cache=cache, batch_size=spec.fm.batch_size,
                             precision=precision, runtime=runtime)
            rate = fm.measure_throughput(timing)  # warmed up, every text timed, nothing cached
            v = votes(fm, texts, prompts, labelers)
            if reference is None:
                reference, base_rate = v, rate
            rows_ok = (v == reference).all(axis=1).mean()
            votes_ok = (v == reference).mean()
            print(f"{task:<14} {name:<11} {rate:8.0f} {rate / base_rate:6.2f}x {rows_ok:14.4f} {votes_ok:15.4f}"
                  f"   ({len(texts)} rows, {len(prompts)} candidates + {len(labelers)} calibrated)", flush=True)


if __name__ == "__main__":
    main()
