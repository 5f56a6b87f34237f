"""Which foundation model gives the better first mile? Each task's whole lifecycle with each FM, one run.

For every model named (a registry name such as all-mpnet-base-v2, the packaged all-MiniLM-L6-v2, or a
local folder) and every task, a copy of the task's spec with `fm.model` set to it runs `fmops run` in a
fresh FMOPS_HOME of its own (cold: nothing cached), and the script prints held-out test numbers from the
stored evaluation: best single prompt, label model and specialist macro-F1, the specialist's accuracy and
its worst class's F1, the FM's texts/s (uncached, measured by the evaluation) and the run's wall time.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/fm_models.py \
        --models all-MiniLM-L6-v2 all-mpnet-base-v2 --tasks sms_spam youtube_spam ag_news
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def spec_with_model(src: Path, dest: Path, model: str) -> None:
    """The task folder copied (labeling-function modules included) with fm.model replaced."""
    shutil.copytree(src, dest)
    spec = yaml.safe_load((src / "task.yaml").read_text())
    spec["fm"] = {**spec.get("fm", {}), "model": model}
    (dest / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def run(task: str, assets: Path, home: Path) -> float:
    env = {**os.environ, "FMOPS_ASSETS_DIR": str(assets), "FMOPS_HOME": str(home)}
    for name in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "FMOPS_FM_CACHE"):
        env.pop(name, None)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "run", task], env=env, cwd=REPO,
                          capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):  # 1: a gate failed, the numbers still stand
        raise SystemExit(f"{task}: fmops run failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def evaluation(task: str, home: Path) -> dict:
    os.environ["FMOPS_HOME"] = str(home)
    from fmops_pipelines.launcher import stored

    return stored(task, "evaluation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["all-MiniLM-L6-v2", "all-mpnet-base-v2"])
    parser.add_argument("--tasks", nargs="+", default=["sms_spam", "youtube_spam", "ag_news"])
    parser.add_argument("--assets", type=Path, default=REPO / "assets")
    parser.add_argument("--keep", type=Path, default=None, help="keep every run's FMOPS_HOME under this folder")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="fm-models-"))
    print(f"{'task':<14}{'fm':<20}{'best prompt':>12}{'label model':>12}{'specialist':>11}{'accuracy':>9}"
          f"{'min-class F1':>13}{'FM texts/s':>11}{'run s':>8}")
    for task in args.tasks:
        for model in args.models:
            tag = Path(model).name
            assets, home = root / tag / "assets", root / tag / "home"
            if not (assets / task).exists():
                spec_with_model(args.assets / task, assets / task, model)
            seconds = run(task, assets, home)
            ev = evaluation(task, home)
            base, test = ev["baselines"], ev["test"]
            min_class = min(c["f1"] for c in test["per_class"].values())
            print(f"{task:<14}{tag:<20}{base['best_prompt']['macro_f1']:>12.3f}{base['label_model']['macro_f1']:>12.3f}"
                  f"{test['macro_f1']:>11.3f}{test['accuracy']:>9.3f}{min_class:>13.3f}{ev['throughput']['fm_texts_per_s']:>11.1f}"
                  f"{seconds:>8.0f}", flush=True)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
