"""Label models: turn noisy, abstaining votes into probabilistic labels P[n, k] without gold labels.

Majority vote is the baseline; Snorkel's LabelModel learns each labeler's accuracy from agreements;
Dawid-Skene learns a full confusion matrix per labeler by EM. Two read gold: `stacked`, a logistic
regression over the labelers' one-hot votes fitted on the dev rows, which learns to discount labelers that
only echo each other (eight similar zero-shot prompts outvote one strong few-shot prompt in every
unsupervised model); and `best_labeler`, the one labeler that scores best on dev with what its vote says of
the class read off dev, the bar every weighting must clear (a label model that does not beat its best labeler on
dev should not be used). Which one to use is decided on dev (out-of-fold for the two that read gold, so
neither is scored on rows it was fitted on), and its probabilities are temperature-calibrated on dev.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import f1_score

from fmops_pipelines.probability import fit_temperature as _fit_temperature
from fmops_pipelines.probability import softmax
from fmops_pipelines.votes import ABSTAIN

KINDS = ("majority_vote", "best_labeler", "snorkel", "dawid_skene", "stacked")  # simplest first (ties)
SUPERVISED = ("best_labeler", "stacked")  # fitted on dev's gold labels, scored on dev out of fold
CROSS_FIT_FOLDS = 5


@dataclass
class FittedLabelModel:
    """A fitted label model plus the class prior it falls back to where every labeler abstains."""

    kind: str
    cardinality: int
    class_balance: np.ndarray
    model: object | None = None  # snorkel LabelModel, Dawid-Skene confusion matrices [m, k, k+1], or sklearn LR
    temperature: float = 1.0
    dev_accuracy: float | None = None  # on dev, out-of-fold where the model was fitted on dev

    def raw_proba(self, L: np.ndarray) -> np.ndarray:
        if self.kind == "best_labeler":
            labeler, table = self.model  # type: ignore[misc]
            return table[_responses(L, self.cardinality)[:, labeler]]
        if self.kind == "majority_vote":
            return majority_vote_proba(L, self.cardinality, self.class_balance)
        if self.kind == "dawid_skene":
            return dawid_skene_posterior(L, self.model, self.class_balance)  # type: ignore[arg-type]
        if self.kind == "stacked":
            probs = self.model.predict_proba(vote_features(L, self.cardinality))  # type: ignore[union-attr]
        else:
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


def vote_features(L: np.ndarray, k: int) -> np.ndarray:
    """One-hot responses per labeler (abstain included): [n, m * (k + 1)]."""
    return np.eye(k + 1)[_responses(L, k)].reshape(len(L), -1)


def fit_stacked(L_dev: np.ndarray, y_dev: np.ndarray, k: int, seed: int = 0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(vote_features(L_dev, k), y_dev)


def response_table(votes_: np.ndarray, y: np.ndarray, k: int, smoothing: float = 1.0) -> np.ndarray:
    """For one labeler's responses (abstain = k): P(response | class), one pseudo-count spread over the responses,
    normalised over the classes; what a response says about the class with every class weighed alike, as the
    macro-F1 that label models are chosen by weighs them.

    Read as P(class | response) under dev's prior instead, a minority-class vote whose dev precision is under a half
    turns into the majority class: accuracy-optimal, but it erases the labeler's recall of that class. A prompt-only
    SMS task (WRENCH sms, 28 spam of 227 dev rows) had a few-shot labeler whose spam votes were 27 spam and 22 ham
    on dev; out of fold some folds read them as ham, scoring it 0.758 dev macro-F1 where its votes score 0.820, and
    a worse label model was kept (test 0.806 against the labeler's 0.872). The shipped tasks' choices and scores
    are the same either way."""
    counts = np.zeros((k + 1, k))
    np.add.at(counts, (_responses(votes_, k), y), 1.0)
    likelihood = (counts + smoothing / (k + 1)) / (counts.sum(axis=0, keepdims=True) + smoothing)
    return likelihood / likelihood.sum(axis=1, keepdims=True)


def fit_best_labeler(L_dev: np.ndarray, y_dev: np.ndarray, k: int) -> tuple[int, np.ndarray]:
    """The labeler whose own votes (read through its class-balanced dev response table) score the best dev
    macro-F1; ties go to the one that abstains least."""
    responses = _responses(L_dev, k)
    tables = [response_table(L_dev[:, j], y_dev, k) for j in range(L_dev.shape[1])]
    score = lambda j: (round(macro_f1(y_dev, tables[j][responses[:, j]], k), 4),
                       (L_dev[:, j] != ABSTAIN).mean())
    best = max(range(L_dev.shape[1]), key=score)
    return best, tables[best]


def cross_fit_folds(y_dev: np.ndarray, k: int) -> int:
    """Cross-fitting folds the dev labels allow for the kinds fitted on dev (0: some class has fewer than 2
    dev rows, so neither `stacked` nor `best_labeler` can be scored out of fold)."""
    counts = np.bincount(y_dev, minlength=k)
    return int(min(CROSS_FIT_FOLDS, counts.min())) if counts.min() >= 2 else 0


def supervised_out_of_fold(kind: str, L_dev: np.ndarray, y_dev: np.ndarray, k: int, class_balance: np.ndarray,
                           seed: int = 0) -> np.ndarray:
    """Dev probabilities of a label model fitted on dev gold, each fold predicted by a model fitted on the
    other folds."""
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros((len(y_dev), k))
    for fit_idx, held in StratifiedKFold(cross_fit_folds(y_dev, k), shuffle=True, random_state=seed).split(L_dev, y_dev):
        fold = fit_label_model(kind, L_dev[fit_idx], k, class_balance, seed=seed, L_dev=L_dev[fit_idx],
                               y_dev=y_dev[fit_idx])
        out[held] = fold.raw_proba(L_dev[held])
    return out


def _logits(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, 1e-12, 1.0))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(_logits(probs) / temperature)


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """Temperature scaling of a label model's probabilities on dev (see fmops_pipelines.probability)."""
    return _fit_temperature(_logits(probs), y, np.logspace(-1, 1.5, 41))


def fit_label_model(kind: str, L_train: np.ndarray, k: int, class_balance: np.ndarray, epochs: int = 500,
                    seed: int = 0, L_dev: np.ndarray | None = None, y_dev: np.ndarray | None = None
                    ) -> FittedLabelModel:
    """Unsupervised kinds fit on the train votes; `stacked` and `best_labeler` on the dev votes and gold labels."""
    if kind in SUPERVISED and (L_dev is None or y_dev is None):
        raise ValueError(f"the {kind} label model is fitted on dev votes and labels")
    if kind == "stacked":
        return FittedLabelModel(kind, k, class_balance, fit_stacked(L_dev, y_dev, k, seed))
    if kind == "best_labeler":
        return FittedLabelModel(kind, k, class_balance, fit_best_labeler(L_dev, y_dev, k))
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


@dataclass
class LabelModelCandidates:
    """Every label model kind fitted and calibrated on dev, with each one's own dev macro-F1.

    Which one teaches is decided downstream when the spec selects by the student's dev score (the student
    is what ships); `best_by_dev` is the choice by the label models' own dev score: the simplest kind
    within dev's noise of the best (fmops_pipelines.noisy_choice).
    """

    models: dict[str, FittedLabelModel]
    dev_scores: dict[str, float]
    by_dev: str | None = None  # the kind best_by_dev returns; None: the top dev score

    @property
    def kinds(self) -> list[str]:
        return list(self.models)

    def best_by_dev(self) -> FittedLabelModel:
        return self.models[self.by_dev] if self.by_dev else self.pick()

    def pick(self, utility: dict[str, float] | None = None) -> FittedLabelModel:
        """The kind with the best `utility` (e.g. its student's dev score); ties: the better own dev score,
        then the simpler model."""
        utility = utility or {}
        best = max(self.models, key=lambda kd: (round(utility.get(kd, 0.0), 4), self.dev_scores[kd],
                                                -KINDS.index(kd)))
        return self.models[best]


def fit_candidates(kind: str, L_train: np.ndarray, L_dev: np.ndarray, y_dev: np.ndarray, k: int,
                   class_balance: np.ndarray, epochs: int = 500, seed: int = 0) -> LabelModelCandidates:
    """Fit the requested kind, or with 'auto' every usable kind, and calibrate each on dev.

    `stacked` and `best_labeler` are scored and calibrated on their out-of-fold dev probabilities, the
    others on their plain ones.
    """
    from fmops_pipelines.errors import SpecError
    from fmops_pipelines.noisy_choice import simplest_within_noise

    if L_train.shape[1] < 3 and kind == "snorkel":
        raise SpecError(f"label_model.kind: snorkel needs at least 3 labelers, this matrix has {L_train.shape[1]}")
    if kind in SUPERVISED and not cross_fit_folds(y_dev, k):
        raise SpecError(f"label_model.kind: {kind} needs at least 2 dev rows of every class")
    # Snorkel's LabelModel is undefined below 3 labelers; 'auto' then chooses among the others, and skips
    # the kinds fitted on dev where dev cannot be cross-fitted.
    cross_fits = bool(cross_fit_folds(y_dev, k))
    usable = {"snorkel": L_train.shape[1] >= 3, "stacked": cross_fits, "best_labeler": cross_fits}
    kinds = tuple(kd for kd in KINDS if usable.get(kd, True)) if kind == "auto" else (kind,)
    fitted = {kd: fit_label_model(kd, L_train, k, class_balance, epochs, seed, L_dev, y_dev) for kd in kinds}
    dev_probs = {kd: (supervised_out_of_fold(kd, L_dev, y_dev, k, class_balance, seed) if kd in SUPERVISED
                      else m.raw_proba(L_dev)) for kd, m in fitted.items()}
    dev_scores = {kd: macro_f1(y_dev, p, k) for kd, p in dev_probs.items()}
    covered = (L_dev != ABSTAIN).any(axis=1)
    for kd, model in fitted.items():
        if covered.sum() >= 10:
            model.temperature = fit_temperature(dev_probs[kd][covered], y_dev[covered])
        model.dev_accuracy = float((dev_probs[kd].argmax(axis=1) == y_dev).mean())
    by_dev, _ = simplest_within_noise(y_dev, {kd: p.argmax(axis=1) for kd, p in dev_probs.items()}, KINDS, k,
                                      seed=seed)
    return LabelModelCandidates(fitted, dev_scores, by_dev)


def choose_label_model(kind: str, L_train: np.ndarray, L_dev: np.ndarray, y_dev: np.ndarray, k: int,
                       class_balance: np.ndarray, epochs: int = 500, seed: int = 0,
                       downstream: Callable[[FittedLabelModel], float] | None = None
                       ) -> tuple[FittedLabelModel, dict[str, float]]:
    """fit_candidates, then keep the best by `downstream(model)` where given (else best_by_dev).
    Returns the chosen model and every kind's own dev macro-F1."""
    candidates = fit_candidates(kind, L_train, L_dev, y_dev, k, class_balance, epochs, seed)
    if downstream and len(candidates.models) > 1:
        return candidates.pick({kd: downstream(m) for kd, m in candidates.models.items()}), candidates.dev_scores
    return candidates.best_by_dev(), candidates.dev_scores


def training_labels(model: FittedLabelModel, matrix, label_names: list[str], anchors: list[str] = ()):
    """Probabilistic labels P[n, k] for the unlabeled train rows, with `covered` = a labeler other than the
    anchors voted, and `voted` = any labeler did (the anchors included).

    Rows no labeler voted on would repeat the prior. Rows only an anchor (the best labeler on dev, voting
    everywhere) labels are its hardest ones: whether the student learns them or leaves them to
    self-training depends on how good the anchor is, and the training stage asks dev
    (specialist.distillation.choose_rows).
    """
    import pandas as pd

    from fmops_pipelines.supervision.label_matrix import META_COLUMNS, precise_columns, votes

    train = matrix[matrix["split"] == "train"].reset_index(drop=True)
    probs = model.predict_proba(votes(train))
    covered = (votes(train[META_COLUMNS + precise_columns(train, anchors)]) != ABSTAIN).any(axis=1)
    out = pd.DataFrame({"id": train["id"], "covered": covered, "voted": (votes(train) != ABSTAIN).any(axis=1)})
    for i, name in enumerate(label_names):
        out[f"p_{name}"] = probs[:, i]
    return out


def candidate_training_labels(candidates: LabelModelCandidates, kinds: list[str], matrix, label_names: list[str],
                              anchors: list[str] = ()):
    """training_labels of each named candidate, stacked, with the kind in a `label_model` column."""
    import pandas as pd

    return pd.concat([training_labels(candidates.models[kd], matrix, label_names, anchors).assign(label_model=kd)
                      for kd in kinds], ignore_index=True)


def labels_of(frame, kind: str):
    """One candidate's rows of candidate_training_labels, as training_labels returns them."""
    return frame[frame["label_model"] == kind].drop(columns="label_model").reset_index(drop=True)


def prob_columns(label_names: list[str]) -> list[str]:
    return [f"p_{name}" for name in label_names]


def shift_to_prior(probs: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Re-weight probabilistic labels so their mean class share matches `prior` (label-shift correction).

    P'[i, c] is proportional to P[i, c] * prior[c] / share[c], where share is P's own mean per class.
    """
    share = np.clip(probs.mean(axis=0), 1e-6, None)
    shifted = probs * (prior / share)[None, :]
    return shifted / shifted.sum(axis=1, keepdims=True)
