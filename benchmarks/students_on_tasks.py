"""Every student architecture trained on a task's stored probabilistic labels, scored on held-out test.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/students_on_tasks.py ag_news \
        [--architectures ngram encoder] [--encoder-epochs 3] [--encoder-lr 5e-5] \
        [--label-model majority_vote|snorkel|dawid_skene|stacked] [--loss soft_ce|confidence_weighted|hard] \
        [--convex-fit]

Needs a finished `fmops run TASK`: it trains on the rows that run's specialist learned (the label model that
taught it, its anchor-row choice), or with --label-model refits the labels from its weak_label_matrix with
that kind, calibrated on dev. `--seeds 0 1 2` repeats the training and prints each candidate's mean. Training is what
the specialist asset does (same spec, self-training, dev early stopping and temperature); the choice
between architectures is made on dev, the test column is only reported. With `specialist.average` (the default)
the n-gram candidates' average (`+averaged`) is listed too, as the specialist step builds it. Prints device, train samples/s
and seconds per epoch beside the quality, so CPU and GPU runs can be compared.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import f1_score

from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.launcher import quiet_libraries, stored
from fmops_pipelines.spec import get_spec
from fmops_pipelines.specialist.selection import averaged_candidate, train_and_select
from fmops_pipelines.specialist.training_data import training_rows
from fmops_pipelines.supervision.label_models import labels_of


def refit_labels(spec, splits, kind: str, anchor_rows: bool = False):
    """Training labels from the stored label matrix with another label model; rows only the anchor
    labels stay out (as in the pipeline) unless `anchor_rows`."""
    from fmops_pipelines.fm.exploration import anchor_ids
    from fmops_pipelines.supervision.label_matrix import anchor_columns, votes, votes_for
    from fmops_pipelines.supervision.label_models import choose_label_model, training_labels

    matrix, dev = stored(spec.name, "weak_label_matrix"), part(splits, "dev")
    model, _ = choose_label_model(kind, votes(matrix, "train"), votes_for(matrix, dev["id"]),
                                  label_indices(dev["label"], spec.label_names), len(spec.label_names),
                                  class_balance(dev["label"], spec.label_names), spec.label_model.epochs,
                                  spec.splits.seed)
    anchors = [] if anchor_rows else anchor_columns(matrix, anchor_ids(stored(spec.name, "prompt_scores")))
    return training_labels(model, matrix, spec.label_names, anchors)


def run_rows(spec, splits, labels, refit=None):
    """(texts, soft targets, self-training pool) as the run's specialist learned them: the label model that
    taught it and its anchor-row choice; with `refit` (refit_labels' output) those labels instead."""
    if refit is not None:
        labels, anchor_rows = refit, False  # refit_labels already decided which rows are learned
    else:
        shipped = stored(spec.name, "specialist") or {}
        labels = labels_of(labels, shipped.get("label_model", labels["label_model"].iloc[0]))
        anchor_rows = shipped.get("anchor_rows") == "learned"
    dev = part(splits, "dev")
    prior = class_balance(dev["label"], spec.label_names) if spec.specialist.match_dev_prior else None
    return training_rows(spec.name, labels, splits, spec.label_names, prior, anchor_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("--architectures", nargs="+", default=["ngram", "encoder"])
    parser.add_argument("--encoder-model", help="the packaged MiniLM name or a local Hugging Face encoder folder")
    parser.add_argument("--encoder-epochs", type=int)
    parser.add_argument("--encoder-lr", type=float)
    parser.add_argument("--encoder-max-length", type=int)
    parser.add_argument("--no-self-training", action="store_true")
    parser.add_argument("--convex-fit", action="store_true",
                        help="each n-gram student also fitted as a logistic regression (specialist.convex_fit)")
    parser.add_argument("--label-model", help="refit the training labels with this label model kind")
    parser.add_argument("--anchor-rows", action="store_true",
                        help="with --label-model: also train on rows only the anchor prompt labels")
    parser.add_argument("--loss", choices=["soft_ce", "confidence_weighted", "hard"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds; the mean is printed")
    args = parser.parse_args()
    quiet_libraries()
    spec = get_spec(args.task)
    splits, labels = stored(args.task, "splits"), stored(args.task, "training_labels")
    if labels is None:
        raise SystemExit(f"{args.task}: no training_labels yet; run `fmops run {args.task}` first")
    encoder = {k: v for k, v in {"model": args.encoder_model, "epochs": args.encoder_epochs, "learning_rate": args.encoder_lr,
                                 "max_length": args.encoder_max_length}.items() if v is not None}
    dev, test = part(splits, "dev"), part(splits, "test")
    refit = refit_labels(spec, splits, args.label_model, args.anchor_rows) if args.label_model else None
    texts, targets, unlabeled = run_rows(spec, splits, labels, refit)
    y_test = label_indices(test["label"], spec.label_names)
    print(f"{args.task}: {len(texts)} training rows, {len(unlabeled)} for self-training, test n={len(test)}")
    print(f"  {'seed':<5}{'student':<20}{'device':>7}{'dev F1':>8}{'test acc':>10}{'test F1':>9}{'texts/s':>10}"
          f"{'train samples/s':>17}{'s/epoch':>9}{'epochs':>8}")
    scores: dict[str, list[float]] = {}
    for seed in args.seeds:
        s = spec.specialist.model_copy(update={
            "architectures": args.architectures, "loss": args.loss or spec.specialist.loss, "seed": seed,
            "self_training": spec.specialist.self_training and not args.no_self_training,
            "convex_fit": spec.specialist.convex_fit or args.convex_fit,
            "encoder": spec.specialist.encoder.model_copy(update=encoder)})
        selection = train_and_select(s, spec.label_names, texts, targets, unlabeled, dev["text"].tolist(),
                                     label_indices(dev["label"], spec.label_names))
        averaged = averaged_candidate(selection, dev["text"].tolist(), label_indices(dev["label"], spec.label_names),
                                      texts, s.min_throughput) if s.average else None
        for c in [*selection.candidates, *([averaged] if averaged else [])]:
            pred = c.model.predict_proba(test["text"].tolist()).argmax(axis=1)
            f1 = f1_score(y_test, pred, average="macro")
            scores.setdefault(c.key, []).append(f1)
            if c is selection.chosen:
                scores.setdefault("chosen on dev", []).append(f1)
            epochs = len(c.history.epochs)
            mark = " <- chosen on dev" if c is selection.chosen else ""
            print(f"  {seed:<5}{c.key:<20}{c.history.device:>7}{c.dev['macro_f1']:>8.3f}"
                  f"{(pred == y_test).mean():>10.3f}{f1:>9.3f}{c.texts_per_s:>10,.0f}{c.history.samples_per_s:>17,.1f}"
                  f"{(f'{c.history.seconds / epochs:.1f}' if epochs else '-'):>9}{epochs:>8}{mark}", flush=True)
    if len(args.seeds) > 1:
        print(f"  test macro-F1 over seeds {args.seeds}: " + ", ".join(
            f"{name} {np.mean(v):.3f} ± {np.std(v):.3f}" for name, v in scores.items()))


if __name__ == "__main__":
    main()
