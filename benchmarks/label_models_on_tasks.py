"""Label models on each task's own weak label matrix (FM prompts, plus rules where the spec has them).

Needs `fmops run TASK` first (reads the stored splits and weak_label_matrix). Usage:
    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/label_models_on_tasks.py sms_spam youtube_spam ag_news
Prints held-out test macro-F1 for the best single labeler (chosen on dev; where it abstains, the dev
majority class), majority vote, each label model and the one chosen on dev; for a
task with labeling functions, once on the prompt columns alone and once with each kind of rule: the
rules fmops mined from the FM's labels (lf_fm_*) and the task's own (lf_*).
"""

from __future__ import annotations

import argparse

import numpy as np

from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.launcher import stored
from fmops_pipelines.spec import get_spec
from fmops_pipelines.supervision.label_matrix import META_COLUMNS, labeler_columns, votes, votes_for
from fmops_pipelines.supervision.label_models import KINDS, choose_label_model, fit_label_model, macro_f1
from fmops_pipelines.votes import ABSTAIN


def best_single_labeler(L_dev, y_dev, L_test, y_test, k: int) -> tuple[str, float]:
    """The labeler whose own votes score best on dev (abstains filled with dev's majority class): its index
    and test macro-F1, the bar a label model must clear to be worth its weighting."""
    fill = int(np.bincount(y_dev, minlength=k).argmax())
    as_probs = lambda votes_: np.eye(k)[np.where(votes_ == ABSTAIN, fill, votes_)]
    best = max(range(L_dev.shape[1]), key=lambda j: macro_f1(y_dev, as_probs(L_dev[:, j]), k))
    return best, macro_f1(y_test, as_probs(L_test[:, best]), k)


def scores(matrix, splits, label_names, epochs: int, seed: int) -> dict[str, float]:
    k = len(label_names)
    dev, test = part(splits, "dev"), part(splits, "test")
    L_train = votes(matrix, "train")
    L_dev, L_test = (votes_for(matrix, p["id"]) for p in (dev, test))
    y_dev, y_test = label_indices(dev["label"], label_names), label_indices(test["label"], label_names)
    balance = class_balance(dev["label"], label_names)
    best, best_f1 = best_single_labeler(L_dev, y_dev, L_test, y_test, k)
    out = {f"best labeler ({labeler_columns(matrix)[best]})": best_f1}
    out |= {kind: macro_f1(y_test, fit_label_model(kind, L_train, k, balance, epochs, seed, L_dev, y_dev)
                          .predict_proba(L_test), k) for kind in KINDS}
    chosen, _ = choose_label_model("auto", L_train, L_dev, y_dev, k, balance, epochs, seed)
    out[f"chosen ({chosen.kind})"] = macro_f1(y_test, chosen.predict_proba(L_test), k)
    return out


def stored_labeling(task: str):
    """(spec, splits, weak_label_matrix) of the task's latest run, or exit saying to run it first."""
    spec = get_spec(task)
    splits, matrix = stored(task, "splits"), stored(task, "weak_label_matrix")
    if matrix is None:
        raise SystemExit(f"{task}: no weak_label_matrix yet; run `fmops run {task}` first")
    return spec, splits, matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+")
    args = parser.parse_args()
    for task in args.tasks:
        spec, splits, matrix = stored_labeling(task)
        cols = labeler_columns(matrix)
        prompts = [c for c in cols if not c.startswith("lf_")]
        mined = [c for c in cols if c.startswith("lf_fm_")]
        own = [c for c in cols if c.startswith("lf_") and c not in mined]
        variants = {"prompts": prompts}
        if mined:
            variants["prompts + FM rules"] = prompts + mined
        if own:
            variants["prompts + own rules"] = prompts + own
        if mined and own:
            variants["all"] = cols
        for variant, keep in variants.items():
            result = scores(matrix[META_COLUMNS + keep], splits, spec.label_names, spec.label_model.epochs,
                            spec.splits.seed)
            row = "  ".join(f"{kind} {value:.3f}" for kind, value in result.items())
            print(f"{task:<14}{variant:<20}{len(keep):>3} labelers  test macro-F1: {row}", flush=True)


if __name__ == "__main__":
    main()
