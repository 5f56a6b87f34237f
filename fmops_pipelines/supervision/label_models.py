"""Label models: turn noisy, abstaining votes into probabilistic labels P[n, k] without gold labels.

Majority vote is the baseline; Snorkel's LabelModel learns each labeler's accuracy from agreements;
Dawid-Skene learns a full confusion matrix per labeler by EM. Which one to use is decided on the gold
dev split (never test), and its probabilities are temperature-calibrated on dev.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import f1_score

from fmops_pipelines.fm.exploration import ABSTAIN
from fmops_pipelines.probability import fit_temperature as _fit_temperature
from fmops_pipelines.probability import softmax

KINDS = ("majority_vote", "snorkel", "dawid_skene")


@dataclass
class FittedLabelModel:
    """A fitted label model plus the class prior it falls back to where every labeler abstains."""

    kind: str
    cardinality: int
    class_balance: np.ndarray
    model: object | None = None  # snorkel LabelModel, or Dawid-Skene confusion matrices [m, k, k]
    temperature: float = 1.0

    def raw_proba(self, L: np.ndarray) -> np.ndarray:
        if self.kind == "majority_vote":
            return majority_vote_proba(L, self.cardinality, self.class_balance)
        if self.kind == "dawid_skene":
            return dawid_skene_posterior(L, self.model, self.class_balance)  # type: ignore[arg-type]
        probs = self.model.predict_proba(L)  # type: ignore[union-attr]
        probs[(L == ABSTAIN).all(axis=1)] = self.class_balance
        return probs / probs.sum(axis=1, keepdims=True)

    def predict_proba(self, L: np.ndarray) -> np.ndarray:
        """Calibrated P[n, k]: raw probabilities sharpened or softened by the dev-fitted temperature."""
        return apply_temperature(self.raw_proba(L), self.temperature)

    def labeler_weights(self) -> np.ndarray | None:
        """Estimated accuracy per labeler (None for majority vote: every vote weighs the same)."""
        if self.kind == "snorkel":
            return np.asarray(self.model.get_weights())  # type: ignore[union-attr]
        if self.kind == "dawid_skene":
            confusion = np.asarray(self.model)[:, :, : self.cardinality]
            correct = np.einsum("jcc->jc", confusion) * self.class_balance
            return correct.sum(axis=1) / (confusion * self.class_balance[None, :, None]).sum(axis=(1, 2))
        return None


def majority_vote_proba(L: np.ndarray, k: int, class_balance: np.ndarray) -> np.ndarray:
    """Vote shares per class; rows with no votes get the class prior."""
    counts = np.stack([(L == c).sum(axis=1) for c in range(k)], axis=1).astype(float)
    total = counts.sum(axis=1, keepdims=True)
    return np.where(total > 0, counts / np.maximum(total, 1), class_balance[None, :])


def _responses(L: np.ndarray, k: int) -> np.ndarray:
    """Votes with abstain as its own response k: a one-class labeler's signal is *when* it abstains."""
    return np.where(L == ABSTAIN, k, L)


def dawid_skene_posterior(L: np.ndarray, confusion: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """P(true class | responses) under per-labeler confusion[j, true, response] and the class prior."""
    R = _responses(L, confusion.shape[1])
    return softmax(np.log(prior)[None, :] + sum(np.log(confusion[j][:, R[:, j]].T) for j in range(R.shape[1])))


def fit_dawid_skene(L: np.ndarray, k: int, prior: np.ndarray, iterations: int = 100, smoothing: float = 1.0,
                    tol: float = 1e-6) -> np.ndarray:
    """EM for per-labeler confusion matrices confusion[j, true, response], abstain being response k
    (Dawid & Skene, 1979). Starts from majority-vote posteriors; the prior stays at the dev class balance.
    """
    R = _responses(L, k)
    T = majority_vote_proba(L, k, prior)
    confusion = np.full((L.shape[1], k, k + 1), 1.0 / (k + 1))
    for _ in range(iterations):
        for j in range(L.shape[1]):
            counts = np.full((k, k + 1), smoothing)
            for v in range(k + 1):
                counts[:, v] += T[R[:, j] == v].sum(axis=0)
            confusion[j] = counts / counts.sum(axis=1, keepdims=True)
        new_T = dawid_skene_posterior(L, confusion, prior)
        if np.abs(new_T - T).max() < tol:
            break
        T = new_T
    return confusion


def _logits(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, 1e-12, 1.0))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(_logits(probs) / temperature)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """Temperature scaling of a label model's probabilities on dev (see fmops_pipelines.probability)."""
    return _fit_temperature(_logits(probs), y, np.logspace(-1, 1.5, 41))


def fit_label_model(kind: str, L_train: np.ndarray, k: int, class_balance: np.ndarray, epochs: int = 500,
                    seed: int = 0) -> FittedLabelModel:
    if kind == "majority_vote":
        return FittedLabelModel(kind, k, class_balance)
    if kind == "dawid_skene":
        return FittedLabelModel(kind, k, class_balance, fit_dawid_skene(L_train, k, class_balance))
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
    """Fit the requested kind, or with 'auto' every kind; keep the best dev macro-F1, then calibrate it on dev."""
    if L_train.shape[1] < 3 and kind == "snorkel":
        from fmops_pipelines.errors import SpecError

        raise SpecError(f"label_model.kind: snorkel needs at least 3 labelers, this matrix has {L_train.shape[1]}")
    # Snorkel's LabelModel is undefined below 3 labelers; 'auto' then chooses among the others.
    kinds = tuple(kd for kd in KINDS if kd != "snorkel" or L_train.shape[1] >= 3) if kind == "auto" else (kind,)
    fitted = {kd: fit_label_model(kd, L_train, k, class_balance, epochs, seed) for kd in kinds}
    dev_scores = {kd: macro_f1(y_dev, m.predict_proba(L_dev), k) for kd, m in fitted.items()}
    best = fitted[max(kinds, key=lambda kd: (dev_scores[kd], -KINDS.index(kd)))]  # ties: the simpler model
    covered = (L_dev != ABSTAIN).any(axis=1)
    if covered.sum() >= 10:
        best.temperature = fit_temperature(best.raw_proba(L_dev[covered]), y_dev[covered])
    return best, dev_scores


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
