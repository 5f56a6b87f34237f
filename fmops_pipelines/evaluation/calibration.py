"""Calibration of predicted probabilities: expected calibration error and the reliability diagram's bins."""

from __future__ import annotations

import itertools

import numpy as np


def reliability_bins(probs: np.ndarray, y: np.ndarray, n_bins: int = 10) -> list[dict]:
    """Per confidence bin: rows, mean confidence, accuracy (top-label calibration)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = []
    for lo, hi in itertools.pairwise(edges):
        mask = (confidence > lo) & (confidence <= hi) if lo > 0 else (confidence >= lo) & (confidence <= hi)
        if mask.any():
            bins.append({"lo": round(float(lo), 2), "hi": round(float(hi), 2), "n": int(mask.sum()),
                         "confidence": float(confidence[mask].mean()), "accuracy": float(correct[mask].mean())})
    return bins


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """ECE (Guo et al., 2017): |accuracy - confidence| per bin, weighted by the bin's share of rows."""
    bins = reliability_bins(probs, y, n_bins)
    n = sum(b["n"] for b in bins)
    return float(sum(b["n"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins)) if n else 0.0
