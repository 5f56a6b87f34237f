"""How far the weak labels leave the fast students from what they reach on gold labels: the label gap.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/label_gap.py sms_spam [--seeds 0 1 2] \
        [--ngram-set learning_rate=0.01 dropout=0.0 ...] [--no-light-fit]

A diagnostic for datasets whose train rows carry gold labels (the shipped tasks do; the pipeline never reads
them). After `fmops run TASK`, each fast architecture is trained two ways, beside a reference learner, all scored on
held-out test:

- `weak`: the run's own training rows and probabilistic labels, as the specialist step trains (self-training on);
- `gold`: every train row with its own gold label, one-hot, no self-training (the same spec otherwise);
- `tfidf+lr`: a reference learner on the gold labels, scikit-learn's TF-IDF word 1-2 grams + char_wb 2-5 grams and
  logistic regression, C chosen on dev.

`gold` minus `weak` is what better labels could still buy this student; `tfidf+lr` minus `gold` what a better
learner could buy on clean labels. A target above the `gold` row is out of reach of the student whatever the
labels. The first line also gives the weak labels' own accuracy on the train rows they label. Each student is trained
as the specialist step trains it, dev choosing between its section's settings and `specialist.light_fit`'s; with
`--no-light-fit`, the section's settings only. `--ngram-set` overrides fields of both n-gram sections (e.g. a lighter
regularisation) and trains with those only, for the weak and gold rows alike.
"""

from __future__ import annotations

import argparse

import numpy as np
from pydantic import ValidationError
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline, make_union
from students_on_tasks import run_rows

from fmops_pipelines.data.splits import label_indices, part
from fmops_pipelines.launcher import quiet_libraries, stored
from fmops_pipelines.spec import get_spec
from fmops_pipelines.specialist.selection import NGRAM_ARCHITECTURES, train_and_select


def gold_train(task: str, splits, label_names: list[str]):
    """Train rows with their gold labels from the dataset asset; an error naming the task if any is missing."""
    train = part(splits, "train")[["id", "text"]]
    dataset = stored(task, "dataset")
    train = train.merge(dataset[["id", "label"]], on="id", how="left")
    missing = int(train["label"].isna().sum())
    if missing:
        raise SystemExit(f"{task}: {missing} of {len(train)} train rows have no gold label; the label gap needs them all")
    return train, label_indices(train["label"], label_names)


def with_ngram_fields(spec, overrides: dict[str, str]):
    """The spec with fields of both n-gram sections replaced, validated as task.yaml would be."""
    merged = {**spec.specialist.model_dump(), "light_fit": None,
              **{k: {**getattr(spec.specialist, k).model_dump(), **overrides} for k in ("ngram", "ngram_char")}}
    try:
        return spec.model_copy(update={"specialist": type(spec.specialist).model_validate(merged)})
    except ValidationError as e:
        err = e.errors()[0]
        raise SystemExit(f"--ngram-set: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """(accuracy, macro-F1, F1 of the last label: spam on the spam tasks)."""
    return float((pred == y).mean()), float(f1_score(y, pred, average="macro")), float(f1_score(y, pred, average=None)[-1])


def tfidf_lr(train_texts, y_train, dev_texts, y_dev):
    """The reference learner, C chosen on dev macro-F1 (the smaller C on ties); deterministic, so fitted once."""
    best = None
    for C in (1.0, 10.0, 100.0):
        model = make_pipeline(make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                                         TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
                              LogisticRegression(C=C, max_iter=5000))
        model.fit(train_texts, y_train)
        dev_f1 = f1_score(y_dev, model.predict(dev_texts), average="macro")
        if best is None or dev_f1 > best[0]:
            best = (dev_f1, model)
    return best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ngram-set", nargs="+", default=[], metavar="FIELD=VALUE",
                        help="override fields of the spec's ngram and ngram_char sections")
    parser.add_argument("--no-light-fit", action="store_true", help="train each student with its section's settings only")
    args = parser.parse_args()
    if any("=" not in item for item in args.ngram_set):
        parser.error(f"--ngram-set takes FIELD=VALUE, not {next(i for i in args.ngram_set if '=' not in i)!r}")
    overrides = dict(item.split("=", 1) for item in args.ngram_set)
    quiet_libraries()
    for task in args.tasks:
        spec, splits, labels = get_spec(task), stored(task, "splits"), stored(task, "training_labels")
        if overrides:
            spec = with_ngram_fields(spec, overrides)
            print(f"{task}: n-gram sections with {overrides}, no light_fit")
        elif args.no_light_fit:
            spec = spec.model_copy(update={"specialist": spec.specialist.model_copy(update={"light_fit": None})})
            print(f"{task}: n-gram sections' own settings, no light_fit")
        if labels is None:
            raise SystemExit(f"{task}: no training_labels yet; run `fmops run {task}` first")
        names = spec.label_names
        train, y_gold = gold_train(task, splits, names)
        dev, test = part(splits, "dev"), part(splits, "test")
        y_dev, y_test = label_indices(dev["label"], names), label_indices(test["label"], names)
        texts, targets, unlabeled = run_rows(spec, splits, labels)
        gold_of = dict(zip(train["text"], y_gold))
        y_weak_rows = np.array([gold_of[t] for t in texts])
        print(f"{task}: weak labels on {len(texts)} of {len(train)} train rows, their argmax {(targets.argmax(1) == y_weak_rows).mean():.3f} "
              f"accurate against gold; test n={len(test)}")
        print(f"  {'student':<11}{'labels':<10}{'dev macro-F1':>13}{'test acc':>13}{'macro-F1':>13}{f'F1 {names[-1]}':>13}   (mean ± std over seeds {args.seeds})")
        ways = {"weak": (texts, targets, unlabeled, True), "gold": (train["text"].tolist(), np.eye(len(names))[y_gold], [], False)}
        for arch in [a for a in spec.specialist.architectures if a in NGRAM_ARCHITECTURES]:
            for way, (rows, soft, pool, self_training) in ways.items():
                runs = []
                for seed in args.seeds:
                    s = spec.specialist.model_copy(update={"architectures": [arch], "seed": seed,
                                                           "self_training": spec.specialist.self_training and self_training})
                    chosen = train_and_select(s, names, rows, soft, pool, dev["text"].tolist(), y_dev).chosen
                    test_pred = chosen.model.predict_proba(test["text"].tolist()).argmax(axis=1)
                    runs.append((chosen.dev["macro_f1"], *scores(y_test, test_pred)))
                print(_row(arch, way, runs), flush=True)
        reference = tfidf_lr(train["text"], y_gold, dev["text"], y_dev)
        dev_f1 = f1_score(y_dev, reference.predict(dev["text"]), average="macro")
        print(_row("tfidf+lr", "gold", [(dev_f1, *scores(y_test, reference.predict(test["text"])))]), flush=True)


def _row(student: str, labels: str, runs: list[tuple[float, ...]]) -> str:
    r = np.array(runs)
    return f"  {student:<11}{labels:<10}" + "".join(f"{m:>7.3f}±{s:.3f}" for m, s in zip(r.mean(0), r.std(0)))


if __name__ == "__main__":
    main()
