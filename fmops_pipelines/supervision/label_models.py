"""Label models: turn noisy, abstaining votes into probabilistic labels P[n, k] without gold labels.

Majority vote is the baseline; Snorkel's LabelModel learns each labeler's accuracy from agreements.
Which one to use is decided on the gold dev split, never on test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import f1_score

from fmops_pipelines.fm.exploration import ABSTAIN

KINDS = ("majority_vote", "snorkel")


@dataclass
class FittedLabelModel:
    """A fitted label model plus the class prior it falls back to where every labeler abstains."""

    kind: str
    cardinality: int
    class_balance: np.ndarray
    model: object | None = None  # snorkel LabelModel when kind == "snorkel"

    def predict_proba(self, L: np.ndarray) -> np.ndarray:
        if self.kind == "majority_vote":
            return majority_vote_proba(L, self.cardinality, self.class_balance)
        probs = self.model.predict_proba(L)  # type: ignore[union-attr]
        uncovered = (L == ABSTAIN).all(axis=1)
        probs[uncovered] = self.class_balance
        return probs / probs.sum(axis=1, keepdims=True)

    def labeler_weights(self) -> np.ndarray | None:
        """Snorkel's estimated accuracy per labeler (None for majority vote: all weigh the same)."""
        if self.kind != "snorkel":
            return None
        return np.asarray(self.model.get_weights())  # type: ignore[union-attr]


def majority_vote_proba(L: np.ndarray, k: int, class_balance: np.ndarray) -> np.ndarray:
    """Vote shares per class; rows with no votes get the class prior."""
    counts = np.stack([(L == c).sum(axis=1) for c in range(k)], axis=1).astype(float)
    total = counts.sum(axis=1, keepdims=True)
    return np.where(total > 0, counts / np.maximum(total, 1), class_balance[None, :])


def fit_label_model(kind: str, L_train: np.ndarray, k: int, class_balance: np.ndarray, epochs: int = 500,
                    seed: int = 0) -> FittedLabelModel:
    if kind == "majority_vote":
        return FittedLabelModel(kind, k, class_balance)
    if kind == "snorkel":
        from snorkel.labeling.model import LabelModel

        model = LabelModel(cardinality=k, verbose=False, device="cpu")
        model.fit(L_train, class_balance=class_balance, n_epochs=epochs, seed=seed, log_freq=epochs + 1,
                  progress_bar=False)
        return FittedLabelModel(kind, k, class_balance, model)
    raise ValueError(f"unknown label model kind '{kind}' (known: {', '.join(KINDS)})")


def hard_labels(probs: np.ndarray) -> np.ndarray:
    return probs.argmax(axis=1)


def macro_f1(y: np.ndarray, probs: np.ndarray, k: int) -> float:
    return float(f1_score(y, hard_labels(probs), average="macro", labels=range(k), zero_division=0))


def choose_label_model(kind: str, L_train: np.ndarray, L_dev: np.ndarray, y_dev: np.ndarray, k: int,
                       class_balance: np.ndarray, epochs: int = 500, seed: int = 0
                       ) -> tuple[FittedLabelModel, dict[str, float]]:
    """Fit the requested kind, or with 'auto' every kind, and keep the best dev macro-F1."""
    kinds = KINDS if kind == "auto" else (kind,)
    fitted = {kd: fit_label_model(kd, L_train, k, class_balance, epochs, seed) for kd in kinds}
    dev_scores = {kd: macro_f1(y_dev, m.predict_proba(L_dev), k) for kd, m in fitted.items()}
    best = max(kinds, key=lambda kd: (dev_scores[kd], kd == "majority_vote"))  # ties: the simpler model
    return fitted[best], dev_scores


def training_labels(model: FittedLabelModel, matrix, label_names: list[str]):
    """Probabilistic labels P[n, k] for the unlabeled train rows, with `covered` = any labeler voted.

    Only covered rows carry information from the labelers; uncovered ones would just repeat the prior.
    """
    import pandas as pd

    from fmops_pipelines.supervision.label_matrix import votes

    train = matrix[matrix["split"] == "train"].reset_index(drop=True)
    L = votes(train)
    probs = model.predict_proba(L)
    out = pd.DataFrame({"id": train["id"], "covered": (L != ABSTAIN).any(axis=1)})
    for i, name in enumerate(label_names):
        out[f"p_{name}"] = probs[:, i]
    return out


def prob_columns(label_names: list[str]) -> list[str]:
    return [f"p_{name}" for name in label_names]


def shift_to_prior(probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Re-weight probabilistic labels so their mean class share matches `prior` (label-shift correction).

    P'[i, c] is proportional to P[i, c] * prior[c] / share[c], where share is P's own mean per class.
    """
    share = np.clip(probs.mean(axis=0), 1e-6, None)
    shifted = probs * (prior / share)[None, :]
    return shifted / shifted.sum(axis=1, keepdims=True)
