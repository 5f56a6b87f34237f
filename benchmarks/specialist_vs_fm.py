"""Throughput and quality of the champion specialist vs the foundation model, per task, in one run.

Needs `fmops run TASK` first (it benchmarks the registered champion). Usage:
    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/specialist_vs_fm.py sms_spam ag_news
Prints, per task: FM texts/s (uncached, batched), specialist texts/s, their ratio, and the stored
held-out test scores of the best single prompt, the label model and the specialist.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def bench(task: str, fm_texts: int, specialist_texts: int) -> dict:
    from fmops_pipelines import paths
    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.data.splits import make_splits, part
    from fmops_pipelines.fm.factory import fm_from_spec
    from fmops_pipelines.launcher import quiet_libraries, stored
    from fmops_pipelines.mlflow_store import using_uri
    from fmops_pipelines.spec import get_spec
    from fmops_pipelines.specialist.packaging import champion_version, load_specialist
    from fmops_pipelines.specialist.student import measure_throughput

    quiet_libraries()
    spec = get_spec(task)
    with using_uri(paths.mlflow_tracking_uri()):
        version = champion_version(task)
        if version is None:
            raise SystemExit(f"{task}: no champion yet; run `fmops run {task}` first")
        model = load_specialist(task, "champion")
    texts = part(make_splits(load_dataset(spec), spec.splits), "test")["text"].tolist()
    fm = fm_from_spec(spec.fm, cache=None)
    fm_rate = fm.measure_throughput(texts[:fm_texts])
    sp_rate = measure_throughput(model, texts, min_seconds=float("inf"), max_texts=specialist_texts)
    summary = stored(task, "evaluation") or {}
    return {"task": task, "version": version, "fm": fm_rate, "specialist": sp_rate, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--fm-texts", type=int, default=1000)
    parser.add_argument("--specialist-texts", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'task':<14}{'FM texts/s':>12}{'specialist texts/s':>20}{'ratio':>8}   test macro-F1: best prompt / label model / specialist")
    for task in args.tasks:
        r = bench(task, args.fm_texts, args.specialist_texts)
        s = r["summary"]
        scores = (f"{s['baselines']['best_prompt']['macro_f1']:.3f} / {s['baselines']['label_model']['macro_f1']:.3f} / "
                  f"{s['test']['macro_f1']:.3f} (v{s['model']['version']})") if s else "no stored evaluation"
        print(f"{task:<14}{r['fm']:>12,.0f}{r['specialist']:>20,.0f}{r['specialist'] / r['fm']:>7,.0f}x   {scores}", flush=True)


if __name__ == "__main__":
    main()
