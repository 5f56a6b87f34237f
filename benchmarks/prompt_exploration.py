"""Does prompt exploration earn its place? Label-model test macro-F1 with the explored labelers vs with
only the spec's first prompt (first template, first verbalizer of each label), per task.

Needs `fmops run TASK` first (reads stored splits, prompt_scores and weak_label_matrix; FM answers come
from the cache). Usage:
    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/prompt_exploration.py sms_spam youtube_spam ag_news
Labeling functions are left out on both sides: this isolates what exploration adds.
"""

from __future__ import annotations

import argparse

from fmops_pipelines import paths
from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.fm.cache import FMCache
from fmops_pipelines.fm.exploration import calibrated_prompts, candidates_for
from fmops_pipelines.fm.factory import fm_from_spec
from fmops_pipelines.launcher import stored
from fmops_pipelines.spec import get_spec
from fmops_pipelines.supervision.label_matrix import META_COLUMNS, prompt_label_matrix, votes, votes_for
from fmops_pipelines.supervision.label_models import choose_label_model, macro_f1


def label_model_f1(matrix, splits, spec) -> tuple[float, str]:
    k = len(spec.label_names)
    dev, test = part(splits, "dev"), part(splits, "test")
    L_dev, L_test = (votes_for(matrix, p["id"]) for p in (dev, test))
    model, _ = choose_label_model(spec.label_model.kind, votes(matrix, "train"), L_dev,
                                  label_indices(dev["label"], spec.label_names), k,
                                  class_balance(dev["label"], spec.label_names), spec.label_model.epochs, spec.splits.seed)
    return macro_f1(label_indices(test["label"], spec.label_names), model.predict_proba(L_test), k), model.kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+")
    args = parser.parse_args()
    print(f"{'task':<14}{'first prompt only':>20}{'explored labelers':>20}{'gain':>8}")
    for task in args.tasks:
        spec = get_spec(task)
        splits, scores, matrix = (stored(task, a) for a in ("splits", "prompt_scores", "weak_label_matrix"))
        if matrix is None:
            raise SystemExit(f"{task}: run `fmops run {task}` first")
        first_id = candidates_for(spec)[0].id
        first = calibrated_prompts(scores[scores["prompt_id"] == first_id], selected_only=False)
        fm = fm_from_spec(spec.fm, FMCache(paths.fm_cache_path()))
        single = prompt_label_matrix(fm, first, splits)
        explored = matrix[META_COLUMNS + [c for c in matrix.columns if c.startswith("p_")]]
        f1_first, kind_first = label_model_f1(single, splits, spec)
        f1_all, kind_all = label_model_f1(explored, splits, spec)
        n = len(explored.columns) - len(META_COLUMNS)
        print(f"{task:<14}{f1_first:>14.3f} ({kind_first[:5]}){f1_all:>11.3f} ({n}, {kind_all[:5]}){f1_all - f1_first:>+8.3f}",
              flush=True)


if __name__ == "__main__":
    main()
