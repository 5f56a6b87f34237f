"""What every student architecture offers: logits -> calibrated probabilities -> labels, save and load.

A saved student is a folder whose config.json names its architecture, so the registry, the pyfunc and
batch inference load any of them the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fmops_pipelines.probability import fit_temperature, softmax
from fmops_pipelines.throughput import texts_per_s

CONFIG_FILE = "config.json"
TEMPERATURE_GRID = np.logspace(-2, 1, 61)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device):
    """bf16 autocast on cuda; a no-op on CPU, where bf16 matmuls are slower than fp32 on most chips."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


class Student:
    """Subclasses set `cfg` (with `labels` and `temperature`) and implement `logits`, `save` and a
    classmethod `load(directory, device)`."""

    architecture = ""
    cfg: object

    def logits(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        return softmax(self.logits(texts, batch_size) / self.cfg.temperature)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.cfg.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def calibrate(self, dev_texts: Sequence[str], y_dev: np.ndarray) -> None:
        """Temperature on dev: students trained on soft labels come out under- or over-confident."""
        self.cfg.temperature = fit_temperature(self.logits(dev_texts), y_dev, TEMPERATURE_GRID)

    def save(self, directory: Path) -> Path:
        raise NotImplementedError


def write_config(directory: Path, cfg: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).write_text(json.dumps(cfg, indent=2))


def serving_scorer(model: Student):
    """What batch inference runs for this model: the compiled numpy scorer for an n-gram student (not its torch
    network), the model itself otherwise. Throughput that decides or gates anything is timed on it."""
    if model.architecture == "ngram":
        from fmops_pipelines.specialist.ngram_scorer import NgramScorer

        return NgramScorer.from_student(model)
    return model


def measure_throughput(model: Student, texts: Sequence[str], min_seconds: float = 1.0, max_texts: int = 65536,
                       batch_size: int | None = None, served: bool = True, cpu_time: bool = False) -> float:
    """Texts/s end to end (featurising or tokenising included) in one process, after a warm-up batch, on enough
    texts (cycled) to take about `min_seconds`: a few hundred for an encoder on CPU, tens of thousands for
    n-grams. `served`: through the scorer serving runs (serving_scorer), else through the training model.
    `cpu_time`: per second of this process's CPU time, which a busy machine does not stretch as it does the
    wall clock (texts per core-second), so a choice made on it does not flip with the machine's load."""
    texts = list(texts)
    run = serving_scorer(model).predict_proba if served else (lambda sample: model.predict_proba(sample, batch_size))
    run(texts[:256])
    return texts_per_s(run, texts, min_seconds, 256, max_texts, cycle=True,
                       clock=time.process_time if cpu_time else time.perf_counter)
