"""Does an encoder teacher make the fast student better? Encoder alone vs the n-gram it distils into vs the
n-gram taught directly by the label model, on held-out test, over several seeds.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/distillation.py sms_spam youtube_spam ag_news \
        [--seeds 0 1 2] [--encoder-model all-MiniLM-L6-v2|/path] [--encoder-epochs 3] [--device cuda]

Needs a finished `fmops run TASK` per task (it reads that run's splits and training labels, and the label
model its specialist was taught by). Each seed runs what `specialist.teacher: encoder` runs
(`distillation.through_encoder`): the encoder fine-tuned on the label model's labels and early-stopped on
dev labels every train row, the n-gram learns those labels, and the n-gram taught by the label model is
trained beside it; dev chooses among the n-grams (the encoder is not eligible: it is too slow to ship).
Test is only reported. The FM's and the n-gram's texts/s are measured in the same run, on test texts.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import f1_score

from fmops_pipelines.data.splits import label_indices, part
from fmops_pipelines.launcher import quiet_libraries, stored
from fmops_pipelines.spec import get_spec
from fmops_pipelines.specialist.distillation import through_encoder
from fmops_pipelines.specialist.selection import select
from fmops_pipelines.specialist.student import measure_throughput
from fmops_pipelines.specialist.training_data import training_rows
from fmops_pipelines.supervision.label_models import labels_of

ROWS = ("encoder alone", "n-gram, label model's labels", "n-gram, distilled from the encoder", "n-gram chosen on dev")


def test_scores(model, texts: list[str], y: np.ndarray, k: int) -> dict[str, float]:
    pred = model.predict_proba(texts).argmax(axis=1)
    per_class = f1_score(y, pred, average=None, labels=range(k), zero_division=0)
    return {"macro_f1": float(per_class.mean()), "accuracy": float((pred == y).mean()), "last_f1": float(per_class[-1])}


def fm_texts_per_s(spec, texts: list[str]) -> float:
    from fmops_pipelines.fm.embedding import EmbeddingFM

    return EmbeddingFM(spec.fm.model).measure_throughput(texts)


def run_task(task: str, args: argparse.Namespace) -> None:
    spec = get_spec(task)
    splits, labels, specialist = stored(task, "splits"), stored(task, "training_labels"), stored(task, "specialist")
    if labels is None or specialist is None:
        raise SystemExit(f"{task}: no finished run; run `fmops run {task}` first")
    names = spec.label_names
    texts, targets, unlabeled = training_rows(task, labels_of(labels, specialist["label_model"]), splits, names)
    dev, test = part(splits, "dev"), part(splits, "test")
    dev_texts, y_dev = dev["text"].tolist(), label_indices(dev["label"], names)
    test_texts, y_test = test["text"].tolist(), label_indices(test["label"], names)
    encoder = {k: v for k, v in {"model": args.encoder_model, "epochs": args.encoder_epochs}.items() if v is not None}
    results: dict[str, list[dict]] = {r: [] for r in ROWS}
    print(f"\n{task}: {len(texts)} rows labelled by {specialist['label_model']}, {len(unlabeled)} uncovered, "
          f"dev n={len(dev)}, test n={len(test)}", flush=True)
    speeds = []
    for seed in args.seeds:
        s = spec.specialist.model_copy(update={"seed": seed, "teacher": "encoder", "architectures": ["ngram", "encoder"],
                                               "min_throughput": None,
                                               "encoder": spec.specialist.encoder.model_copy(update=encoder)})
        began = time.perf_counter()
        selection, teacher = through_encoder(s, names, texts, targets, unlabeled, dev_texts, y_dev, device=args.device)
        by_key = {c.key: c for c in selection.candidates}
        ngrams = [by_key["ngram"], by_key["ngram<-encoder"]]
        chosen = select(ngrams, s.objective, None, y_dev).chosen  # what ships: the encoder is too slow
        for row, c in zip(ROWS, [by_key["encoder"], *ngrams, chosen]):
            results[row].append({**test_scores(c.model, test_texts, y_test, len(names)), "dev": c.dev["macro_f1"],
                                 "taught_by": c.taught_by})
        speeds.append(measure_throughput(chosen.model, test_texts))
        print(f"  seed {seed}: {time.perf_counter() - began:.0f} s (encoder trained {teacher.trained.history.seconds:.0f}"
              f" s at {teacher.trained.history.samples_per_s:.0f} samples/s on {teacher.trained.history.device}, "
              f"labelled {len(teacher.texts)} rows in {teacher.labeling_seconds:.0f} s); chosen on dev: "
              f"{chosen.key}", flush=True)
    fm = fm_texts_per_s(spec, test_texts[:1024])
    last = names[-1]
    print(f"  {'test, mean over seeds (spread = max - min)':<44}{'macro-F1':>16}{'accuracy':>16}{last + ' F1':>16}"
          f"{'dev macro-F1':>14}")
    for row in ROWS:
        cells = []
        for metric in ("macro_f1", "accuracy", "last_f1"):
            values = np.array([r[metric] for r in results[row]])
            cells.append(f"{values.mean():.3f} ± {np.ptp(values):.3f}".rjust(16))
        dev_mean = np.mean([r["dev"] for r in results[row]])
        print(f"  {row:<44}{''.join(cells)}{dev_mean:>14.3f}")
    print(f"  chosen n-gram {np.median(speeds):,.0f} texts/s vs FM {fm:,.1f} texts/s = {np.median(speeds) / fm:,.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--encoder-model", help="the packaged MiniLM, a registry name or a local Hugging Face folder")
    parser.add_argument("--encoder-epochs", type=int)
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when present)")
    args = parser.parse_args()
    quiet_libraries()
    for task in args.tasks:
        run_task(task, args)


if __name__ == "__main__":
    main()
