"""What batch inference calls: `predict_proba(texts) -> float32 [n, k]` over the champion's labels.

The n-gram champion scores in numpy (no torch import, fork-safe, weights memory-mapped); any other
architecture runs its own torch model on the device and batch size the tuner picked (bf16 on cuda).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Settings:
    """One point of the tuning space; `workers` > 1 forks processes that share the loaded model."""

    batch_size: int
    workers: int = 1
    threads: int | None = None  # torch intra-op threads (torch scorers only)
    device: str = "cpu"

    def as_dict(self) -> dict:
        return {"batch_size": self.batch_size, "workers": self.workers, "threads": self.threads,
                "device": self.device}


class TorchStudentScorer:
    """A saved torch student (the encoder) behind the scorer interface."""

    fork_safe = False  # torch and CUDA state do not survive fork(); it parallelises inside torch instead

    def __init__(self, directory: Path, device: str):
        import torch

        from fmops_pipelines.specialist.loading import load_student

        self.device = device
        self.student = load_student(directory, device=torch.device(device))
        self.labels, self.architecture = list(self.student.cfg.labels), self.student.architecture
        self.batch_size: int | None = None

    def configure(self, settings: Settings) -> None:
        import torch

        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.batch_size = settings.batch_size

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.student.predict_proba(texts, self.batch_size).astype(np.float32, copy=False)


def load_scorer(model_dir: Path, architecture: str, device: str = "cpu"):
    if architecture == "ngram":  # its cost is featurising on the CPU: a GPU would only add transfers
        from fmops_pipelines.specialist.ngram_scorer import NgramScorer

        return NgramScorer.load(model_dir)
    return TorchStudentScorer(model_dir, device)
