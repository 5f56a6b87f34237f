"""How a lifecycle run slows down when it shares the machine, measured in one run of this script.

Scenarios, each `fmops run TASK` on a fresh FMOPS_HOME (cold: no FM cache, no checkpoints) unless said:

1. sms_spam alone (cold), then again on the same home (warm);
2. youtube_spam alone (cold), the solo reference for scenario 4;
3. sms_spam with N busy processes beside it (pure-Python spin loops, default 4: on 2 cores a fair share
   would make the run ~3x slower);
4. sms_spam and youtube_spam started together.

Prints the seconds of every step (from fmops' own step lines) per scenario, and the ratios the issue sets
targets for: alone <= 90 s, warm <= 30 s, busy <= 3.5x solo with no step worse than 4x, each of the
concurrent pair <= 2.5x its solo time.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/contention.py [--busy 4] [--tasks sms_spam]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEP = re.compile(r"^\s+\[(ok |FAIL)\]\s+(\S+)\s+([\d.]+)s")


def spin() -> None:
    while True:
        pass


def start_run(task: str, home: Path) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "FMOPS_HOME": str(home)}
    for name in ("FMOPS_FM_CACHE", "DAGSTER_HOME", "MLFLOW_TRACKING_URI", "FMOPS_EXECUTOR"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "fmops_pipelines.cli", "run", task], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, time.perf_counter()


def finish(proc: subprocess.Popen, started: float) -> dict:
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"fmops run failed (exit {proc.returncode}): {err.strip().splitlines()[-1:]}")
    steps = {m.group(2): float(m.group(3)) for line in (out + err).splitlines() if (m := STEP.match(line))}
    return {"total": seconds, "steps": steps}


def run(task: str, home: Path) -> dict:
    return finish(*start_run(task, home))


def table(results: dict[str, dict]) -> str:
    """One row per step (in run order), one column per scenario; '-' where the scenario ran another task."""
    names = list(results)
    order: list[str] = []
    for r in results.values():
        order += [s for s in r["steps"] if s not in order]
    width = max(len(s) for s in order) + 2
    lines = [f"{'step':<{width}}" + "".join(f"{n:>20}" for n in names)]
    for step in order:
        cells = (f"{results[n]['steps'][step]:.1f}s" if step in results[n]["steps"] else "-" for n in names)
        lines.append(f"{step:<{width}}" + "".join(f"{c:>20}" for c in cells))
    lines.append(f"{'TOTAL (wall)':<{width}}" + "".join(f"{results[n]['total']:>19.1f}s" for n in names))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=4, help="busy processes beside the run in scenario 3")
    parser.add_argument("--pair", nargs=2, default=["sms_spam", "youtube_spam"], help="the two tasks of scenario 4")
    args = parser.parse_args()
    first, second = args.pair
    print(f"machine: {os.cpu_count()} cores; load before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fmops-contention-") as tmp:
        root = Path(tmp)
        results: dict[str, dict] = {}
        results["alone"] = run(first, root / "alone")
        results["warm"] = run(first, root / "alone")
        print(f"{first} alone {results['alone']['total']:.1f}s, warm {results['warm']['total']:.1f}s", flush=True)
        results[f"{second} alone"] = run(second, root / "second")
        busy = [mp.Process(target=spin, daemon=True) for _ in range(args.busy)]
        for p in busy:
            p.start()
        try:
            results[f"+{args.busy} busy"] = run(first, root / "busy")
        finally:
            for p in busy:
                p.terminate()
        a, b = start_run(first, root / "pair1"), start_run(second, root / "pair2")
        results["pair"], results[f"{second} pair"] = finish(*a), finish(*b)

    print()
    print(table(results))
    solo, solo2 = results["alone"], results[f"{second} alone"]
    loaded = results[f"+{args.busy} busy"]
    worst = max((loaded["steps"][s] / max(t, 0.5), s) for s, t in solo["steps"].items() if s in loaded["steps"])
    print()
    print(f"alone {solo['total']:.1f}s (target <= 90); warm re-run {results['warm']['total']:.1f}s (target <= 30)")
    print(f"with {args.busy} busy processes: {loaded['total'] / solo['total']:.2f}x solo (target <= 3.5x); "
          f"worst step {worst[1]} {worst[0]:.2f}x (target <= 4x; steps under 0.5 s solo count as 0.5 s)")
    print(f"started together: {first} {results['pair']['total'] / solo['total']:.2f}x, {second} "
          f"{results[f'{second} pair']['total'] / solo2['total']:.2f}x its solo time (target <= 2.5x each)")


if __name__ == "__main__":
    main()
