"""Choosing on a small dev split without reading noise as signal.

Dev has ~200 rows; two candidates 0.01 macro-F1 apart on it are usually indistinguishable. The choice
here is the one-standard-error rule (Breiman et al., 1984) on *paired* bootstrap differences: resample
dev rows, score every candidate on the same resample, and keep the simplest candidate whose shortfall
against the best is within one standard error of that shortfall. Each candidate's 90 % interval is
reported beside the choice, so a reader sees how much the choice was worth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 500


@dataclass(frozen=True)
class Scored:
    score: float  # on the whole dev split
    low: float  # 5th percentile over resamples
    high: float  # 95th percentile
    shortfall: float  # best's score minus this one's, on the whole split
    shortfall_se: float  # standard error of that difference over paired resamples
    within_noise: bool  # shortfall <= shortfall_se (times the choice's tolerance)

    def row(self) -> dict:
        return {"dev": round(self.score, 4), "interval_90": [round(self.low, 4), round(self.high, 4)],
                "shortfall": round(self.shortfall, 4), "shortfall_se": round(self.shortfall_se, 4),
                "within_noise_of_best": self.within_noise}


def _score(y: np.ndarray, pred: np.ndarray, k: int, objective: str) -> float:
    """Accuracy, or macro-F1 over all k classes (a class with no true and no predicted row scores 0, as
    scikit-learn's zero_division=0), from the confusion counts: thousands of resamples stay fast."""
    if objective == "accuracy":
        return float((pred == y).mean())
    confusion = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(confusion)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)  # 2 TP + FP + FN
    return float(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0).mean())


def simplest_within_noise(y: np.ndarray, predictions: dict[str, np.ndarray], simplest_first: Sequence[str], k: int,
                          objective: str = "macro_f1", seed: int = 0,
                          tolerance: float = 1.0) -> tuple[str, dict[str, Scored]]:
    """The simplest candidate (first in `simplest_first`) not worse than the best beyond noise (`tolerance`
    standard errors of the shortfall: 1, the rule; more where the first candidate is known to be the better one
    more often than dev can show), and every candidate's scores. `predictions`: each candidate's predicted class
    per dev row."""
    names = [n for n in simplest_first if n in predictions]
    full = {n: _score(y, predictions[n], k, objective) for n in names}
    best = max(names, key=lambda n: (full[n], -names.index(n)))
    rng = np.random.default_rng(seed)
    samples = {n: np.empty(N_RESAMPLES) for n in names}
    for b in range(N_RESAMPLES):
        idx = rng.integers(0, len(y), len(y))
        for n in names:
            samples[n][b] = _score(y[idx], predictions[n][idx], k, objective)
    scored = {}
    for n in names:
        diff = samples[best] - samples[n]
        shortfall, se = full[best] - full[n], float(diff.std(ddof=1))
        scored[n] = Scored(full[n], float(np.percentile(samples[n], 5)), float(np.percentile(samples[n], 95)),
                           shortfall, se, shortfall <= tolerance * se)
    return next(n for n in names if scored[n].within_noise), scored
