"""How the n-gram student's training slows beside busy processes, by torch threads and OpenMP wait policy.

Trains the shipped sms_spam n-gram student (its spec, gold train labels smoothed to soft labels, no
self-training) with 1 thread, with every core, and with every core where fmops's choice per step may fall back to
one (one thread or all, whichever timed faster lately: specialist/thread_choice.py, the default), under
OMP_WAIT_POLICY=ACTIVE with libgomp's own spin count (30 billion spins: minutes), ACTIVE with fmops's bounded
GOMP_SPINCOUNT (what fmops picks on an idle machine) and PASSIVE (what it picks on a loaded one,
fmops_pipelines/__init__.py), each in its own process (the policy is read when torch loads), first on an otherwise
idle machine, then with `--busy` pure-Python spin loops beside it. Torch's intra-op pool splits each op of a
batch across threads that wait for each other; the student's ops are tiny, so a descheduled thread stalls the team.
`idle cpu s`: the CPU seconds the process burns in the 3 s after its trainings while it does nothing (its OpenMP
threads still spinning).

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/student_threads.py [--busy 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from fmops_pipelines import SPIN_COUNT
from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.data.splits import label_indices, make_splits, part
from fmops_pipelines.spec import get_spec
from fmops_pipelines.specialist.ngram import train_ngram
from fmops_pipelines.specialist.selection import student_configs


def spin() -> None:
    while True:
        pass


def train_seconds(data: dict, setting: str) -> tuple[float, float]:
    """`setting`: "1", "N" (torch's N threads for every step) or "N, chosen" (fmops's default: each step on one
    thread or N, whichever timed faster lately; specialist/thread_choice.py)."""
    torch.set_num_threads(int(setting.split(",")[0]))
    cfg, train_cfg = student_configs(data["spec"].specialist, data["labels"], "ngram", "cpu")
    start = time.perf_counter()
    _, history = train_ngram(cfg, train_cfg, data["texts"], data["soft"], data["dev"], data["y_dev"],
                             choose_threads=setting.endswith("chosen"))
    return time.perf_counter() - start, history.best_dev_macro_f1


def measure(busy_n: int) -> dict:
    """In this process (policy fixed by its environment): seconds alone and beside busy processes, per setting."""
    spec = get_spec("sms_spam")
    splits = make_splits(load_dataset(spec), spec.splits)
    gold = load_dataset(spec).set_index("id")["label"]
    train, dev = part(splits, "train"), part(splits, "dev")
    y = label_indices(gold.loc[train["id"]], spec.label_names)
    data = {"spec": spec, "labels": spec.label_names, "texts": train["text"].tolist(),
            "soft": (np.eye(2)[y] * 0.8 + 0.1).astype(np.float32), "dev": dev["text"].tolist(),
            "y_dev": label_indices(dev["label"], spec.label_names)}
    cores = os.cpu_count() or 1
    settings = ["1"] + ([str(cores), f"{cores}, chosen"] if cores > 1 else [])
    alone = {t: train_seconds(data, t) for t in settings}
    before = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(3)
    after = resource.getrusage(resource.RUSAGE_SELF)
    idle = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    busy = [mp.Process(target=spin, daemon=True) for _ in range(busy_n)]
    for p in busy:
        p.start()
    try:
        loaded = {t: train_seconds(data, t) for t in settings}
    finally:
        for p in busy:
            p.terminate()
    return {"rows": len(data["texts"]), "idle_cpu_s": idle,
            "results": {t: [alone[t][0], loaded[t][0], alone[t][1]] for t in settings}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=4)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.busy)))
        return
    print(f"machine: {os.cpu_count()} cores; torch {torch.__version__}; load before {os.getloadavg()[0]:.2f}")
    print(f"{'policy':>22} {'threads':>10} {'alone s':>9} {f'+{args.busy} busy s':>12} {'slow-down':>10} "
          f"{'dev macro-F1':>13} {'idle cpu s':>11}")
    ours = ("FMOPS_OMP_WAIT_POLICY", "FMOPS_GOMP_SPINCOUNT", "GOMP_SPINCOUNT")  # the child keeps what it is given
    base = {k: v for k, v in os.environ.items() if k not in ours}
    # libgomp's own count under ACTIVE, given as the user's (fmops keeps a user's count; its own is SPIN_COUNT)
    for name, policy, spins in (("ACTIVE, spins 3e10", "ACTIVE", "30000000000"),
                                (f"ACTIVE, spins {SPIN_COUNT}", "ACTIVE", SPIN_COUNT), ("PASSIVE", "PASSIVE", None)):
        env = {**base, "OMP_WAIT_POLICY": policy, **({"GOMP_SPINCOUNT": spins} if spins else {})}
        out = json.loads(subprocess.run([sys.executable, __file__, "--busy", str(args.busy), "--child"], check=True,
                                        text=True, capture_output=True, env=env).stdout.strip().splitlines()[-1])
        for t, (alone, loaded, f1) in out["results"].items():
            print(f"{name:>22} {t:>10} {alone:>9.1f} {loaded:>12.1f} {loaded / alone:>9.2f}x {f1:>13.3f} "
                  f"{out['idle_cpu_s']:>11.2f}")


if __name__ == "__main__":
    main()
