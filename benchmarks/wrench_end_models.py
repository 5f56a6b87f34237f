"""Our specialists trained only on WRENCH's labeling-function votes, beside WRENCH's BERT end model.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/wrench_end_models.py \
        [--architectures ngram encoder] [--encoder-model all-MiniLM-L6-v2|/path/to/hf-encoder] \
        [--teacher label_model|encoder] [--seeds 0 1 2]

Protocol (WRENCH's end-model setting): a label model turns the train split's LF votes into
probabilistic labels (no gold train labels anywhere); the students train on the covered train rows
with the noise-aware loss; WRENCH's gold `valid` split serves as dev (early stopping, temperature,
self-training gate, architecture choice), and `test` is scored once. YouTube reports accuracy, SMS the
spam class's F1. The reference is WRENCH's BERT trained on majority-vote labels (SOURCES.md).
`--teacher encoder` runs the specialist's distillation path (`distillation.through_encoder`): the encoder
learns the label model's labels, labels every train row, and the n-gram learns those beside the directly
taught n-gram. Each seed is one row block; the last line is the dev-chosen student's test mean and spread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import f1_score

from fmops_pipelines.data import readers, registry
from fmops_pipelines.data.splits import class_balance, label_indices
from fmops_pipelines.spec import EncoderStudentSpec, SpecialistSpec
from fmops_pipelines.specialist.distillation import through_encoder
from fmops_pipelines.specialist.selection import train_and_select
from fmops_pipelines.supervision.label_models import fit_label_model

WRENCH_BERT_ON_MV = {"wrench_youtube": 95.36, "wrench_sms": 94.56}
LABELS = ["ham", "spam"]


def score(name: str, y: np.ndarray, pred: np.ndarray) -> float:
    return 100 * ((pred == y).mean() if name == "wrench_youtube" else f1_score(y, pred, pos_label=1))


def run(name: str, args: argparse.Namespace) -> None:
    chosen = [run_seed(name, args, seed) for seed in args.seeds]
    print(f"  chosen on dev, test over seeds {args.seeds}: mean {np.mean(chosen):.2f}, spread (max - min) "
          f"{np.ptp(chosen):.2f}; WRENCH BERT (MV) {WRENCH_BERT_ON_MV[name]:.2f}", flush=True)


def run_seed(name: str, args: argparse.Namespace, seed: int) -> float:
    df = readers.read_wrench(registry.fetch(name))
    split = {s: df[df["split"] == s] for s in ("train", "dev", "test")}
    L = {s: np.array(part["weak_labels"].tolist()) for s, part in split.items()}
    balance = class_balance(split["dev"]["label"], LABELS)
    label_model = fit_label_model(args.label_model, L["train"], 2, balance)
    covered = (L["train"] != -1).any(axis=1)
    soft = label_model.predict_proba(L["train"])[covered]
    texts = split["train"]["text"].to_numpy(dtype=object)
    spec = SpecialistSpec(architectures=args.architectures, loss=args.loss, self_training=not args.no_self_training,
                          teacher=args.teacher, seed=seed,
                          encoder=EncoderStudentSpec(model=args.encoder_model, epochs=args.encoder_epochs,
                                                     learning_rate=args.encoder_lr, max_length=args.max_length))
    y_dev, y_test = (label_indices(split[s]["label"], LABELS) for s in ("dev", "test"))
    start = time.perf_counter()
    train = (list(texts[covered]), soft, list(texts[~covered]), split["dev"]["text"].tolist(), y_dev)
    if args.teacher == "encoder":
        selection = through_encoder(spec, LABELS, *train)[0]
    else:
        selection = train_and_select(spec, LABELS, *train)
    test_texts = split["test"]["text"].tolist()
    metric = "accuracy" if name == "wrench_youtube" else "spam F1"
    print(f"\n{name}: label model {args.label_model} on {L['train'].shape[1]} LFs, {covered.sum()} of "
          f"{len(covered)} train rows covered; seed {seed}; test {metric} (%), {time.perf_counter() - start:.0f} s")
    print(f"  {'student':<16}{'dev':>8}{'test':>8}{'WRENCH BERT (MV)':>18}{'texts/s':>10}{'train samples/s':>17}")
    lm_test = score(name, y_test, label_model.predict_proba(L["test"]).argmax(axis=1))
    print(f"  {'(label model argmax on test votes)':<44}{lm_test:>8.2f}")
    for c in selection.candidates:
        test = score(name, y_test, c.model.predict_proba(test_texts).argmax(axis=1))
        mark = " <- chosen on dev" if c is selection.chosen else ""
        print(f"  {c.key:<16}{100 * c.dev['macro_f1']:>8.2f}{test:>8.2f}{WRENCH_BERT_ON_MV[name]:>18.2f}"
              f"{c.texts_per_s:>10,.0f}{c.history.samples_per_s:>17,.1f}{mark}", flush=True)
        if c is selection.chosen:
            chosen_test = test
    return chosen_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(WRENCH_BERT_ON_MV))
    parser.add_argument("--architectures", nargs="+", default=["ngram", "encoder"])
    parser.add_argument("--label-model", default="majority_vote")
    parser.add_argument("--loss", default="soft_ce")
    parser.add_argument("--encoder-model", default="all-MiniLM-L6-v2", help="or a local Hugging Face encoder folder")
    parser.add_argument("--encoder-epochs", type=int, default=3)
    parser.add_argument("--encoder-lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--no-self-training", action="store_true")
    parser.add_argument("--teacher", choices=["label_model", "encoder"], default="label_model")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args()
    for name in args.datasets:
        run(name, args)


if __name__ == "__main__":
    main()
