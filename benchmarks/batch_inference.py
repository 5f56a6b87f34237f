"""The last mile, measured in one run on the same input: FM texts/s, the champion's untuned texts/s (the
torch model at the old fixed batch size, one process), its tuned texts/s, and `fmops predict` end to end
(CSV in, Parquet out, process start-up included) with peak memory, for 10k, 100k and 1M rows.

Needs a champion (`fmops run sms_spam` first). Usage:
    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/batch_inference.py sms_spam
Targets on 2 cores with the n-gram champion: 1M rows end to end >= 100,000 rows/s; start-up <= 3 s;
peak RSS <= 600 MB, and at 1M rows within 1.2x of that at 100k (the input is streamed).
Peak RSS is sampled every 20 ms: `main` is the `fmops predict` process, `tree` adds its worker processes
(shared pages counted once per process, so `tree` overstates what the machine needs).
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
SIZES = (10_000, 100_000, 1_000_000)


def run_measured(cmd: list[str]) -> dict:
    """Wall seconds and peak RSS (MB) of a command, main process and process tree."""
    import psutil

    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    main_peak = tree_peak = 0
    while proc.poll() is None:
        try:
            main = proc.memory_info().rss
            tree = main + sum(c.memory_info().rss for c in proc.children(recursive=True))
        except psutil.Error:
            continue
        main_peak, tree_peak = max(main_peak, main), max(tree_peak, tree)
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()}")
    return {"seconds": seconds, "rss_main_mb": main_peak / 2**20, "rss_tree_mb": tree_peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", default="sms_spam")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import pandas as pd
    import pyarrow as pa

    from fmops_pipelines import paths
    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.fm.factory import fm_from_spec
    from fmops_pipelines.inference.bundle import load_bundle
    from fmops_pipelines.inference.tuning import Overrides, machine_id, tune, tuned_settings
    from fmops_pipelines.launcher import quiet_libraries
    from fmops_pipelines.mlflow_store import using_uri
    from fmops_pipelines.spec import get_spec
    from fmops_pipelines.specialist.packaging import load_specialist
    from fmops_pipelines.specialist.student import measure_throughput

    quiet_libraries()
    spec = get_spec(args.task)
    bundle = load_bundle(spec.name)  # the champion's serving bundle (exported now if it is missing)
    texts = load_dataset(spec)["text"].tolist()
    fig: dict = {"task": spec.name, "model_version": bundle.version, "architecture": bundle.info["architecture"],
                 "cpus": os.cpu_count(), "machine": machine_id("cpu")}

    fm = fm_from_spec(spec.fm, cache=None)
    fig["fm_texts_per_s"] = fm.measure_throughput(texts[:256])
    with using_uri(paths.mlflow_tracking_uri()):
        torch_model = load_specialist(spec.name, bundle.version)
    fig["untuned_texts_per_s"] = measure_throughput(torch_model, texts, min_seconds=2.0, batch_size=4096,
                                                   served=False)
    scorer = bundle.scorer("cpu")
    sample = pa.RecordBatch.from_pandas(pd.DataFrame({"text": (texts * 5)[:24576]}), preserve_index=False)
    measured = tune(scorer, sample, "text", "cpu")
    fig["tuned_texts_per_s"], fig["tuned_settings"], fig["tuning_table"] = (
        measured.texts_per_s, measured.settings.as_dict(), measured.table)
    tuned_settings(spec.name, bundle.version, scorer, lambda: sample, "text", "cpu", Overrides())  # warm the cache

    fmops = [sys.executable, "-m", "fmops_pipelines.cli", "predict", spec.name]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pd.DataFrame({"text": texts[:1]}).to_csv(tmp / "one.csv", index=False)
        run_measured([*fmops, "--input", str(tmp / "one.csv"), "--output", str(tmp / "one.parquet")])  # disk cache
        fig["startup_seconds"] = min(
            run_measured([*fmops, "--input", str(tmp / "one.csv"), "--output", str(tmp / "one.parquet")])["seconds"]
            for _ in range(3))
        fig["end_to_end"] = []
        for n in args.sizes:
            source = tmp / f"in_{n}.csv"
            rows = pd.Series(texts).sample(n, replace=True, random_state=n).tolist()
            pd.DataFrame({"id": range(n), "text": rows}).to_csv(source, index=False)
            r = run_measured([*fmops, "--input", str(source), "--output", str(tmp / f"out_{n}.parquet")])
            assert pd.read_parquet(tmp / f"out_{n}.parquet", columns=["id"])["id"].is_unique
            fig["end_to_end"].append({"rows": n, **r, "rows_per_s": n / r["seconds"]})
            source.unlink()
    report(fig)
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2))


def report(fig: dict) -> None:
    print(f"{fig['task']} champion v{fig['model_version']} ({fig['architecture']}), {fig['cpus']} CPUs")
    print(f"  FM (uncached)             {fig['fm_texts_per_s']:>12,.0f} texts/s")
    print(f"  specialist, untuned       {fig['untuned_texts_per_s']:>12,.0f} texts/s  (torch, batch 4096, 1 process)")
    s = fig["tuned_settings"]
    print(f"  specialist, tuned         {fig['tuned_texts_per_s']:>12,.0f} texts/s  (batch {s['batch_size']}, "
          f"{s['workers']} worker(s)): {fig['tuned_texts_per_s'] / fig['untuned_texts_per_s']:.2f}x untuned, "
          f"{fig['tuned_texts_per_s'] / fig['fm_texts_per_s']:,.0f}x the FM")
    print(f"  `fmops predict` start-up  {fig['startup_seconds']:>12.2f} s  (1-row file, best of 3; target <= 3 s)")
    print(f"  {'rows':>10} {'seconds':>9} {'rows/s':>10} {'RSS main MB':>12} {'RSS tree MB':>12}")
    for r in fig["end_to_end"]:
        print(f"  {r['rows']:>10,} {r['seconds']:>9.2f} {r['rows_per_s']:>10,.0f} {r['rss_main_mb']:>12.0f} "
              f"{r['rss_tree_mb']:>12.0f}")
    by_rows = {r["rows"]: r for r in fig["end_to_end"]}
    if 100_000 in by_rows and 1_000_000 in by_rows:
        ratio = by_rows[1_000_000]["rss_main_mb"] / by_rows[100_000]["rss_main_mb"]
        print(f"  1M rows: {by_rows[1_000_000]['rows_per_s']:,.0f} rows/s end to end (target >= 100,000); peak RSS "
              f"1M / 100k = {ratio:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
