"""Prediction drift of a scored partition against the champion's reference profile from evaluation.

Two signals decide: the population stability index of the predicted class shares,
sum((a - r) * ln(a / r)) (0 when identical; the usual reading is < 0.1 stable, 0.1-0.25 moderate,
> 0.25 a shift worth acting on), and the drop in mean confidence, which catches inputs the model is
unsure about even when the classes keep their shares. The PSI of the confidence histogram is reported
too but does not decide: with a test split of a few hundred rows its ten bins are too noisy (measured
0.17 between two unshifted SMS samples). Empty bins get a small floor so one unseen class does not read
as infinite drift.
"""

from __future__ import annotations

import numpy as np

FLOOR = 1e-4
CONFIDENCE_BINS = 10


class PredictionProfile:
    """Predicted-class counts and a confidence histogram, accumulated batch by batch."""

    def __init__(self, n_classes: int):
        self.n_classes, self.rows, self.confidence_sum = n_classes, 0, 0.0
        self.class_counts = np.zeros(n_classes, dtype=np.int64)
        self.confidence_counts = np.zeros(CONFIDENCE_BINS, dtype=np.int64)

    def add(self, probs: np.ndarray) -> None:
        confidence = probs.max(axis=1)
        lo = 1.0 / self.n_classes  # bins span chance .. certainty
        bins = np.clip(((confidence - lo) / (1.0 - lo) * CONFIDENCE_BINS).astype(np.int64), 0, CONFIDENCE_BINS - 1)
        self.rows += len(probs)
        self.class_counts += np.bincount(probs.argmax(axis=1), minlength=self.n_classes)
        self.confidence_counts += np.bincount(bins, minlength=CONFIDENCE_BINS)
        self.confidence_sum += float(confidence.sum())

    def as_dict(self) -> dict:
        n = max(self.rows, 1)
        return {"n": self.rows, "class_share": (self.class_counts / n).round(6).tolist(),
                "confidence_share": (self.confidence_counts / n).round(6).tolist(),
                "mean_confidence": round(self.confidence_sum / n, 6)}


def reference_profile(probs: np.ndarray) -> dict:
    """The champion's profile on the held-out test split, recorded at evaluation."""
    profile = PredictionProfile(probs.shape[1])
    profile.add(np.asarray(probs))
    return profile.as_dict()


def psi(actual: list[float], reference: list[float]) -> float:
    a = np.clip(np.asarray(actual, dtype=float), FLOOR, None)
    r = np.clip(np.asarray(reference, dtype=float), FLOOR, None)
    a, r = a / a.sum(), r / r.sum()
    return float(np.sum((a - r) * np.log(a / r)))


def assess_drift(profile: dict, reference: dict | None, max_psi: float, max_confidence_drop: float = 0.1,
                 min_rows: int = 100) -> dict:
    """{"checked", "drifted", "class_psi", "confidence_drop", "confidence_psi", ...}."""
    if not reference:
        return {"checked": False, "drifted": False, "reason": "the champion has no reference profile "
                                                                "(evaluated before fmops recorded one)"}
    if profile["n"] < min_rows:
        return {"checked": False, "drifted": False, "reason": f"{profile['n']} rows, fewer than min_rows={min_rows}"}
    class_psi = psi(profile["class_share"], reference["class_share"])
    confidence_psi = psi(profile["confidence_share"], reference["confidence_share"])
    drop = reference["mean_confidence"] - profile["mean_confidence"]
    return {"checked": True, "drifted": bool(class_psi > max_psi or drop > max_confidence_drop),
            "class_psi": round(class_psi, 4), "max_psi": max_psi, "confidence_drop": round(drop, 4),
            "max_confidence_drop": max_confidence_drop, "confidence_psi": round(confidence_psi, 4),
            "class_share": profile["class_share"], "reference_class_share": reference["class_share"],
            "mean_confidence": profile["mean_confidence"],
            "reference_mean_confidence": reference["mean_confidence"]}
