"""The first mile at scale: a prompt-only sentiment task over SST-2's 67,349 phrases, pool by pool, with and
without fm.budget.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/first_mile_scale.py \
        [--pools 10000 30000 67349] [--budgets none 5000 10000 20000] [--runtimes torch/fp32 onnx/fp32 onnx/int8] \
        [--csv docs/first_mile_scale.csv]

The task is what a new user would write for their own export (the `fmops init` draft: two templates, plain
verbalizers, no labeling functions), over the registry's sst2_phrases: 4,000 rows drawn once keep their labels
(test_fraction 0.5: the same 2,000 test rows in every run; splits.dev_size 200 gold rows, the other labels
dropped), and the first `pool - 4000` of the remaining rows, in one fixed shuffle, are unlabelled. So a larger
pool only adds unlabelled rows, and every run is scored on the same test rows.

Each (pool, budget) is one cold `fmops run` (fresh FMOPS_HOME, so every FM answer is a new call) in a child
process of its own, which reports its own peak RSS, each step's seconds (from the Dagster run's step stats) and
peak resident memory (sampled every 0.2 s: `mb_<step>`), the FM texts encoded (its FM cache's entries) and the
held-out test macro-F1 of the specialist and the best prompt. Before the runs, each FM runtime's texts/s is
timed on 512 of the pool's texts, alone. Printed at the end, from this one run: the cold lifecycle seconds at the largest pool, the
specialist with each budget minus without one, FM calls at the largest pool over those at the smallest (per
budget), and peak RSS at the largest pool over the smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

LABELLED = 4000
STEPS = ["dataset", "splits", "prompt_scores", "weak_label_matrix", "label_model", "gold_teacher",
         "training_labels", "specialist", "evaluation", "review_queue", "champion"]


def task_spec(data: Path, budget: int | None) -> dict:
    """What `fmops init` drafts for such a file (verbalizers edited once, as its LOOK note asks), plus the budget."""
    spec = {
        "description": "Movie review sentiment (SST-2 phrases), prompt-only.",
        "dataset": {"path": str(data), "text_column": "review", "label_column": "sentiment", "id_column": "review_id"},
        "labels": [{"name": "negative", "verbalizers": ["negative", "a negative review"]},
                   {"name": "positive", "verbalizers": ["positive", "a positive review"]}],
        "splits": {"dev_size": 200, "test_fraction": 0.5, "seed": 0},
        "prompts": {"templates": ["{label}", "This text is {label}."], "max_labelers": 8, "min_coverage": 0.3},
        "inference": {"text_column": "review"},
        "gates": [{"metric": "test_macro_f1", "min": 0.5}],
    }
    if budget is not None:
        spec["fm"] = {"budget": budget}
    return spec


def write_data(pool: int, folder: Path) -> Path:
    """The export for a pool size: the same labelled rows first, then `pool - LABELLED` unlabelled ones."""
    from fmops_pipelines.data import readers, registry

    df = readers.read_sst2_phrases(registry.fetch("sst2_phrases")).sample(frac=1.0, random_state=0)
    df = df.head(pool).reset_index(drop=True)
    out = pd.DataFrame({"review_id": df["id"], "review": df["text"],
                        "sentiment": df["label"].map({"0": "negative", "1": "positive"})})
    out.loc[LABELLED:, "sentiment"] = ""
    path = folder / f"reviews_{pool}.csv"
    out.to_csv(path, index=False)
    return path


def runtimes_texts_per_s(texts: list[str], runtimes: list[str]) -> dict[str, float]:
    from fmops_pipelines.fm.embedding import EmbeddingFM

    out = {}
    for item in runtimes:
        runtime, precision = item.split("/")
        fm = EmbeddingFM("all-MiniLM-L6-v2", cache=None, runtime=runtime, precision=precision)
        out[item] = round(fm.measure_throughput(texts, min_seconds=5.0), 1)
    return out


def cached_answers(path: Path) -> int:
    """The FM's answers a cold run stored: one per text it encoded (the embedding backend caches every encoding,
    whichever stage asked: exploration, the weak label matrix, the gold teacher, the evaluation, the review)."""
    import sqlite3

    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


class RssSampler:
    """This process's resident memory every 0.2 s (/proc/self/statm), so each step's peak can be told apart:
    ru_maxrss is one number for the whole run, and memory freed by a step need not leave the process."""

    def __init__(self, every_s: float = 0.2):
        import threading

        self.samples: list[tuple[float, int]] = []
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self.thread.start()

    def _run(self, every_s: float) -> None:
        while not self.stop.wait(every_s):
            with open("/proc/self/statm") as f:
                self.samples.append((time.time(), int(f.read().split()[1]) * self.page))

    def peak_mb(self, start: float, end: float) -> int:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return round(max(inside) / 2**20) if inside else 0


def child(name: str) -> None:
    """One cold run in this process; prints a RESULT line of JSON."""
    import dagster as dg

    from fmops_pipelines.launcher import prepare_environment, quiet_libraries, run_job, stored
    from fmops_pipelines.spec import get_spec

    prepare_environment()
    quiet_libraries()
    spec = get_spec(name)
    rss = RssSampler()
    start = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        outcome = run_job(spec, f"{name}_lifecycle", out=quiet)
    seconds = time.perf_counter() - start
    rss.stop.set()
    stats = dg.DagsterInstance.get().get_run_step_stats(outcome.run_id)
    timed = [(s.step_key.split("__")[-1], s) for s in stats if s.start_time and s.end_time]
    steps = {key: round(s.end_time - s.start_time, 1) for key, s in timed}
    step_rss = {key: rss.peak_mb(s.start_time, s.end_time) for key, s in timed}
    summary = stored(name, "evaluation") or {}
    fm_texts = cached_answers(Path(os.environ["FMOPS_HOME"]) / "fm_cache.sqlite")
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print("RESULT " + json.dumps({
        "exit_code": outcome.exit_code, "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 1024),
        "fm_calls": fm_texts,
        "specialist": (summary.get("test") or {}).get("macro_f1"),
        "best_prompt": ((summary.get("baselines") or {}).get("best_prompt") or {}).get("macro_f1"),
        "steps": steps, "step_rss": step_rss}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pools", nargs="+", type=int, default=[10000, 30000, 67349])
    parser.add_argument("--budgets", nargs="+", default=["none", "5000", "10000", "20000"])
    parser.add_argument("--runtimes", nargs="+", default=["torch/fp32", "onnx/fp32", "onnx/int8"])
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    work = Path(tempfile.mkdtemp(prefix="fmops-first-mile-"))
    print(f"runs' homes and tasks under {work} (benchmarks/specialist_trials.py re-runs a step there)", flush=True)
    assets = work / "assets"
    budgets = [None if b == "none" else int(b) for b in args.budgets]
    data = {pool: write_data(pool, work) for pool in args.pools}
    texts = pd.read_csv(data[max(args.pools)])["review"].sample(512, random_state=1).tolist()
    os.environ["FMOPS_HOME"] = str(work / "probe-home")
    rates = runtimes_texts_per_s(texts, args.runtimes)
    print(f"FM texts/s (512 pool texts, alone): {json.dumps(rates)}", flush=True)
    rows = []
    for pool in args.pools:
        for budget in budgets:
            name = f"sst2_p{pool}_b{budget or 'none'}"
            (assets / name).mkdir(parents=True, exist_ok=True)
            (assets / name / "task.yaml").write_text(yaml.safe_dump(task_spec(data[pool], budget), sort_keys=False))
            env = {**os.environ, "FMOPS_ASSETS_DIR": str(assets), "FMOPS_HOME": str(work / f"home-{name}")}
            done = subprocess.run([sys.executable, __file__, "--child", name], env=env, capture_output=True,
                                  text=True, check=False)
            line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                print(f"{name}: no result (exit {done.returncode}): {done.stderr[-2000:]}", flush=True)
                continue
            result = json.loads(line[len("RESULT "):])
            row = {"pool": pool, "budget": budget or "none",
                   **{k: v for k, v in result.items() if k not in ("steps", "step_rss")},
                   **{f"s_{k}": result["steps"].get(k) for k in STEPS},
                   **{f"mb_{k}": result["step_rss"].get(k) for k in STEPS}}
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            if args.csv:
                args.csv.parent.mkdir(parents=True, exist_ok=True)
                pd.DataFrame(rows).to_csv(args.csv, index=False)
    frame = pd.DataFrame(rows)
    frame = frame[frame["exit_code"] != 2] if len(frame) else frame  # a failed run has no quality to compare
    with pd.option_context("display.width", 250, "display.max_columns", 40):
        print(frame.to_string(index=False))
    if frame.empty:
        return
    small, large = min(args.pools), max(args.pools)
    at = frame.set_index(["pool", "budget"])
    print(f"\ncold lifecycle at {large:,} rows: " + ", ".join(
        f"budget {b}: {at.loc[(large, b), 'seconds']:.0f} s" for b in frame["budget"].unique() if (large, b) in at.index))
    for pool in args.pools:
        if (pool, "none") in at.index:
            print(f"pool {pool:,}: specialist minus no budget: " + ", ".join(
                f"budget {b}: {at.loc[(pool, b), 'specialist'] - at.loc[(pool, 'none'), 'specialist']:+.3f}"
                for b in frame["budget"].unique() if b != "none" and (pool, b) in at.index))
    if small != large:
        for b in frame["budget"].unique():
            if (small, b) in at.index and (large, b) in at.index:
                print(f"budget {b}: FM calls {large:,} / {small:,} rows = "
                      f"{at.loc[(large, b), 'fm_calls'] / at.loc[(small, b), 'fm_calls']:.2f}x, peak RSS "
                      f"{at.loc[(large, b), 'peak_rss_mb'] / at.loc[(small, b), 'peak_rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
