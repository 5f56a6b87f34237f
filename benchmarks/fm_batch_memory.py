"""The embedding FM's batch size on this machine: texts/s and the memory a pass holds, per batch size.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/fm_batch_memory.py [--task sms_spam]
        [--texts 4000] [--batch-sizes 16 32 64] [--repeats 2]

Each (batch size, repeat) encodes the same texts of the task, uncached, in a fresh child process (so one run's
freed heap is not the next one's head room), in alternating order, after a warm-up; it reports texts/s and the
peak RSS above the loaded model (first_mile_scale's sampler, every 5 ms). Attention's memory grows with batch x
length squared, so the task's longest texts set the peak; what fmops uses when fm.batch_size is unset is
fm/embedding.py's CPU_BATCH / GPU_BATCH.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


def child(task: str, n: int, batch_size: int) -> dict:
    import psutil
    from first_mile_scale import RssSampler

    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.fm.embedding import EmbeddingFM
    from fmops_pipelines.spec import get_spec

    texts = load_dataset(get_spec(task, REPO / "assets"))["text"].sample(n, random_state=0).tolist()
    fm = EmbeddingFM(batch_size=batch_size)
    fm._encode_uncached(texts[:64])  # the weights, kernels and tokenizer warmed up
    loaded = round(psutil.Process().memory_info().rss / 2**20)
    rss = RssSampler(every_s=0.005)
    start, began = time.time(), time.perf_counter()
    fm._encode_uncached(texts)
    seconds = time.perf_counter() - began
    rss.stop.set()
    return {"batch_size": batch_size, "texts_per_s": round(n / seconds, 1), "loaded_mb": loaded,
            "transient_mb": rss.peak_mb(start, time.time()) - loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="sms_spam")
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 32, 64])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print("RESULT " + json.dumps(child(args.task, args.texts, args.child)), flush=True)
        return
    rows = []
    for r in range(args.repeats):
        for b in args.batch_sizes if r % 2 == 0 else list(reversed(args.batch_sizes)):
            done = subprocess.run([sys.executable, __file__, "--task", args.task, "--texts", str(args.texts),
                                   "--child", str(b)], capture_output=True, text=True, check=True)
            row = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))[7:])
            rows.append(row)
            print(f"batch {row['batch_size']:>4}: {row['texts_per_s']:>7.1f} texts/s, "
                  f"+{row['transient_mb']} MB over the loaded model ({row['loaded_mb']} MB)", flush=True)
    print(f"\n{args.task}, {args.texts} texts, {args.repeats} run(s) each, medians:")
    base = max(args.batch_sizes)
    med = {b: statistics.median(r["texts_per_s"] for r in rows if r["batch_size"] == b) for b in args.batch_sizes}
    mem = {b: max(r["transient_mb"] for r in rows if r["batch_size"] == b) for b in args.batch_sizes}
    for b in args.batch_sizes:
        print(f"batch {b:>4}: {med[b]:>7.1f} texts/s ({med[b] / med[base]:.2f}x batch {base}), "
              f"peak +{mem[b]} MB ({mem[b] / max(mem[base], 1):.2f}x)")


if __name__ == "__main__":
    main()
