"""The specialist step alone, on a finished run's stored labels, with each `specialist.trial_rows`: its seconds,
trainings (rows, epochs, seconds each), peak memory and the shipped student's held-out test macro-F1.

    FMOPS_DATA_HOME=../shared/datasets FMOPS_HOME=<home of a finished run> [FMOPS_ASSETS_DIR=<its assets>] \
        .venv/bin/python benchmarks/specialist_trials.py TASK --trial-rows 5000 none [--trainings]

The step is what the `specialist` asset runs (distillation.distill: teacher choice, anchor rows, architectures,
light fit, gold rows' cross-fitting, and past trial_rows the refit on the whole pool), on the same labels, gold
teacher, weak label matrix and splits for every value, so only trial_rows differs; test rows are only scored. Each
value runs in this one process, one after the other, with a fresh checkpoint folder (no memo is reused); peak RSS
is the process's so far, so list the smaller-memory value first. `benchmarks/first_mile_scale.py` prints the folder of
its runs' homes (`<work>/home-<task>`, tasks in `<work>/assets`).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from sklearn.metrics import f1_score

from fmops_pipelines.data.splits import label_indices, part
from fmops_pipelines.fm.exploration import anchor_ids
from fmops_pipelines.launcher import prepare_environment, quiet_libraries, stored
from fmops_pipelines.spec import get_spec
from fmops_pipelines.specialist import distillation, training_loop
from fmops_pipelines.supervision.label_matrix import anchor_columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task")
    parser.add_argument("--trial-rows", nargs="+", default=["5000", "none"])
    parser.add_argument("--trainings", action="store_true", help="print each training's rows, epochs and seconds")
    args = parser.parse_args()
    prepare_environment()
    quiet_libraries()
    spec = get_spec(args.task)
    splits, labels, label_model, teacher, matrix, prompts = (stored(args.task, a) for a in (
        "splits", "training_labels", "label_model", "gold_teacher", "weak_label_matrix", "prompt_scores"))
    if splits is None or labels is None:
        raise SystemExit(f"{args.task}: no finished run in this FMOPS_HOME (run `fmops run {args.task}` first)")
    test = part(splits, "test")
    y_test = label_indices(test["label"], spec.label_names)
    trainings: list[tuple[str, int, int, float]] = []
    fit = training_loop._fit

    def timed(net, optimizers, schedulers, n_rows, *rest):
        start = time.perf_counter()
        history = fit(net, optimizers, schedulers, n_rows, *rest)
        checkpoint = rest[7]  # _fit's arguments after n_rows: ..., fingerprint_, checkpoint, ...
        trainings.append((checkpoint.stem, n_rows, len(history.epochs), round(time.perf_counter() - start, 1)))
        return history

    training_loop._fit = timed
    for value in args.trial_rows:
        trial_rows = None if value == "none" else int(value)
        trainings.clear()
        run_spec = spec.model_copy(update={"specialist": spec.specialist.model_copy(update={"trial_rows": trial_rows})})
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as checkpoints:
            out = distillation.distill(run_spec, label_model, labels, splits, Path(checkpoints), "cpu",
                                       teacher_labels=teacher, matrix=matrix,
                                       anchors=anchor_columns(matrix, anchor_ids(prompts)))
        seconds = time.perf_counter() - start
        chosen = out.selection.chosen
        pred = chosen.model.predict_proba(test["text"].tolist()).argmax(axis=1)
        if args.trainings:
            for row in trainings:
                print("  " + " ".join(str(x) for x in row))
        print(json.dumps({
            "trial_rows": trial_rows, "step_s": round(seconds, 1), "trainings": len(trainings),
            "training_s": round(sum(t[3] for t in trainings), 1),
            "test_macro_f1": round(float(f1_score(y_test, pred, average="macro")), 4), "shipped": chosen.key,
            "sampled": out.sampled, "gold_rows_used": (out.gold_rows or {}).get("used"),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}), flush=True)


if __name__ == "__main__":
    main()
