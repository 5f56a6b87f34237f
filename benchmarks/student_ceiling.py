"""How high the fast student could reach on clean labels, beside wider fast features: the student's ceiling.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/student_ceiling.py sms_spam youtube_spam \
        ag_news wrench_youtube [--gold 200] [--seeds 0 1 2] [--csv FILE]

A diagnostic for datasets whose unlabelled rows carry gold labels (the pipeline never reads them). Per task (its
shipped spec; `wrench_*` as in label_budget.py), per draw of gold rows (`--gold`, `--seeds`) and the spec's test
split, test macro-F1 of:

- `teacher`: the gold teacher fitted on the drawn gold rows as the pipeline fits it (supervision.gold_teacher.teach:
  the kind chosen out of fold, self-trained where that scores better);
- `convex_on_teacher`: the shipped convex student (specialist/ngram_convex.py, the spec's `ngram_char` n-grams) on
  the teacher's labels of the pool and the gold rows: what the pipeline's student learns from;
- `convex_on_truth`: the same student on every non-test row's own gold label: its ceiling whatever the teacher;
- on those same clean labels, class-balanced logistic regression at C = 1 and 10 on: `tfidf` (scikit-learn's word
  1-2 and char_wb 2-5 grams), `tokens_tfidf` (the FM's pooled input token vectors beside them: a table lookup, no
  forward pass, so a fast student could serve it) and `teacher_features` (the teacher's joined kind: the FM's
  sentence embedding too, which a fast student cannot serve);
- `tfidf` and `tokens_tfidf` again on what the convex student learns from (`..._on_teacher`: the teacher's labels
  of the pool, each row weighted by its confidence, and the gold rows): what a wider student would learn here.

The FM's answers are cached where the runs' are (FMOPS_HOME, or FMOPS_FM_CACHE).

`convex_on_truth` below `teacher` says the student, not its labels, holds the specialist under its teacher; a
learner above `convex_on_truth` is what a wider student could buy on labels that clean.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from label_budget import WRENCH, variant_spec
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score


def task_rows(task: str, gold: int, seed: int):
    """(spec, splits, every row's own label index) of one draw."""
    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.data.splits import label_indices, task_splits
    from fmops_pipelines.spec import TaskSpec

    spec = TaskSpec.model_validate({**variant_spec(task, "shipped", gold, seed), "name": task})
    dataset = load_dataset(spec)
    splits, _ = task_splits(spec, dataset, None)
    truth = dataset.set_index("id")["label"].reindex(splits["id"])
    if truth.isna().any():
        raise SystemExit(f"{task}: {int(truth.isna().sum())} rows have no gold label; the ceiling needs them all")
    return spec, splits, label_indices(truth, spec.label_names)


def measure(task: str, gold: int, seed: int, fm) -> dict:
    from fmops_pipelines.data.splits import gold_folds
    from fmops_pipelines.specialist.ngram_convex import train_ngram_convex
    from fmops_pipelines.specialist.selection import student_configs
    from fmops_pipelines.supervision import gold_teacher

    spec, splits, y = task_rows(task, gold, seed)
    names, k = spec.label_names, len(spec.label_names)
    texts = splits["text"].tolist()
    split = splits["split"].to_numpy()
    gold_rows, pool, test = (np.flatnonzero(split == s) for s in ("dev", "train", "test"))
    labelled = np.flatnonzero(split != "test")
    embeddings, tokens = fm.embed(texts), fm.embed_tokens(texts)

    def f1(pred: np.ndarray) -> float:
        return round(float(f1_score(y[test], pred, average="macro", labels=range(k), zero_division=0)), 4)

    row = {"task": task, "gold": len(gold_rows), "seed": seed, "pool": len(pool), "test": len(test)}
    features = gold_teacher.Features.build(texts, split != "test", embeddings, None, tokens)
    folds = gold_folds(y[gold_rows], k, spec.splits.seed)
    teacher = gold_teacher.teach(features, splits[["id", "split"]], y[gold_rows], folds, names, spec.splits.seed)
    full = teacher.labels[teacher.labels["fold"] == gold_teacher.FULL].set_index("id")
    probs = full.reindex(splits["id"])[[f"p_{n}" for n in names]].to_numpy()
    row["teacher_kind"] = teacher.labels["teacher"].iloc[0]
    row["teacher"] = f1(probs[test].argmax(axis=1))

    cfg, train_cfg = student_configs(spec.specialist, names, "ngram_char")

    def convex(rows: np.ndarray, soft: np.ndarray) -> float:
        student, _ = train_ngram_convex(cfg, train_cfg, [texts[i] for i in rows], soft, [], np.array([]))
        return f1(student.predict_proba([texts[i] for i in test]).argmax(axis=1))

    row["convex_on_teacher"] = convex(np.concatenate([pool, gold_rows]),
                                      np.vstack([probs[pool], np.eye(k)[y[gold_rows]]]))
    row["convex_on_truth"] = convex(labelled, np.eye(k)[y[labelled]])

    fit_texts = [texts[i] for i in labelled]
    word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2).fit(fit_texts).transform(texts)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2).fit(fit_texts)
    ngrams = sparse.hstack([word, char.transform(texts)]).tocsr() / np.sqrt(2)  # each family of norm 1, rows of 1
    blocks = {"tfidf": ngrams,
              "tokens_tfidf": sparse.hstack([sparse.csr_matrix(tokens), ngrams]).tocsr() / np.sqrt(2),
              "teacher_features": features.by_kind[gold_teacher.WITH_TOKENS].joined()
              if gold_teacher.WITH_TOKENS in features.by_kind else None}
    taught = np.concatenate([pool, gold_rows])
    y_taught = np.concatenate([probs[pool].argmax(axis=1), y[gold_rows]])
    w_taught = np.concatenate([probs[pool].max(axis=1), np.ones(len(gold_rows))])
    for name, X in blocks.items():
        for c in (1.0, 10.0):
            if X is None:
                continue
            model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(X[labelled], y[labelled])
            row[f"{name}_C{c:g}"] = f1(model.predict(X[test]))
            if name != "teacher_features":
                model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
                model.fit(X[taught], y_taught, sample_weight=w_taught)
                row[f"{name}_on_teacher_C{c:g}"] = f1(model.predict(X[test]))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--gold", type=int, default=200, help="gold rows the teacher is fitted on")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="which draws of them")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    for task in args.tasks:
        if not (Path("assets") / WRENCH.get(task, task) / "task.yaml").exists():
            sys.exit(f"{task}: no assets/{WRENCH.get(task, task)}/task.yaml (run from the repository root)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from fmops_pipelines import paths
    from fmops_pipelines.fm.cache import FMCache
    from fmops_pipelines.fm.embedding import EmbeddingFM
    from fmops_pipelines.launcher import quiet_libraries

    quiet_libraries()
    fm = EmbeddingFM(cache=FMCache(paths.fm_cache_path()))  # the packaged MiniLM, as every shipped spec's FM
    rows = []
    for task in args.tasks:
        for seed in args.seeds:
            rows.append(measure(task, args.gold, seed, fm))
            print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
            if args.csv:
                args.csv.parent.mkdir(parents=True, exist_ok=True)
                pd.DataFrame(rows).to_csv(args.csv, index=False)
    frame = pd.DataFrame(rows).drop(columns=["seed", "teacher_kind"])
    print(f"mean over seeds {args.seeds}:")
    print(frame.groupby("task", sort=False).mean().round(4).T.to_string())


if __name__ == "__main__":
    main()
