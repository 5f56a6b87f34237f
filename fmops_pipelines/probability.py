"""Shared probability helpers: a stable softmax and temperature scaling (Guo et al., 2017).

Prompts, label models and the specialist all calibrate the same way: pick, on gold dev rows, the
temperature that minimises the negative log-likelihood of softmax(logits / T) over a log grid.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(probs[np.arange(len(y)), y] + 1e-12)))


def fit_temperature(logits: np.ndarray, y: np.ndarray, grid: Iterable[float]) -> float:
    """The grid temperature minimising dev NLL of softmax(logits / T)."""
    return float(min(grid, key=lambda t: nll(softmax(logits / t), y)))
