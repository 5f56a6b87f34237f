"""Our label models on WRENCH's own label matrices, beside WRENCH's published numbers.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/wrench_label_models.py

Protocol (WRENCH's): fit on the train split's votes without labels, class balance from valid, score on
test; rows where every LF abstains and ties between classes get a random label. YouTube reports
accuracy, SMS the spam class's F1. Each number is the mean over --seeds tie-breaking draws. We also
print the plain argmax (uncovered rows -> the dev class prior) that fmops itself uses.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import f1_score

from fmops_pipelines.data import readers, registry
from fmops_pipelines.data.splits import class_balance, label_indices
from fmops_pipelines.supervision.label_models import KINDS, choose_label_model, fit_label_model

WRENCH = {  # SOURCES.md: WRENCH paper, label models (YouTube accuracy, SMS spam F1)
    "wrench_youtube": {"majority_vote": 84.00, "dawid_skene": 83.20, "snorkel": 84.00},
    "wrench_sms": {"majority_vote": 23.97, "dawid_skene": 4.94, "snorkel": 7.06},
}
LABELS = ["ham", "spam"]


def wrench_predict(probs: np.ndarray, L: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """argmax with random tie-breaking; rows with no votes get a uniformly random label."""
    top = probs.max(axis=1, keepdims=True)
    tied = np.isclose(probs, top)
    pred = np.array([rng.choice(np.flatnonzero(row)) for row in tied])
    uncovered = (L == -1).all(axis=1)
    pred[uncovered] = rng.integers(0, probs.shape[1], uncovered.sum())
    return pred


def score(name: str, y: np.ndarray, pred: np.ndarray) -> float:
    return 100 * ((pred == y).mean() if name == "wrench_youtube" else f1_score(y, pred, pos_label=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    for name in WRENCH:
        df = readers.read_wrench(registry.fetch(name))
        L = {s: np.array(df.loc[df["split"] == s, "weak_labels"].tolist()) for s in ("train", "dev", "test")}
        y = {s: label_indices(df.loc[df["split"] == s, "label"], LABELS) for s in ("train", "dev", "test")}
        balance = class_balance(df.loc[df["split"] == "dev", "label"], LABELS)
        metric = "accuracy" if name == "wrench_youtube" else "spam F1"
        covered = (L["test"] != -1).any(axis=1).mean()
        print(f"\n{name}: {L['train'].shape[1]} LFs, train {len(L['train'])}, test {len(L['test'])}, "
              f"test coverage {100 * covered:.1f}%  (test {metric}, %)")
        print(f"  {'label model':<16}{'WRENCH':>8}{'fmops':>8}{'± sd':>7}{'fmops argmax':>14}")
        models = {kind: fit_label_model(kind, L["train"], 2, balance, L_dev=L["dev"], y_dev=y["dev"]) for kind in KINDS}
        chosen, _ = choose_label_model("auto", L["train"], L["dev"], y["dev"], 2, balance)
        models[f"auto ({chosen.kind})"] = chosen
        for kind, model in models.items():
            probs = model.predict_proba(L["test"])
            draws = [score(name, y["test"], wrench_predict(probs, L["test"], np.random.default_rng(s)))
                     for s in range(args.seeds)]
            ref = WRENCH[name].get(kind)
            print(f"  {kind:<16}{ref if ref is not None else '':>8}{np.mean(draws):>8.2f}{np.std(draws):>7.2f}"
                  f"{score(name, y['test'], probs.argmax(axis=1)):>14.2f}")


if __name__ == "__main__":
    main()
