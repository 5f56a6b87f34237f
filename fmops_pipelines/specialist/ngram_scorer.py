"""The n-gram student's forward pass without torch, for CPU batch inference.

In eval mode the network is `head(EmbeddingBag_sum(indices, weights))`, which is exactly
`(X @ E) @ W.T + b` for the sparse feature matrix X; the compiled featuriser sums E's rows for each text as it
counts the text's n-grams, so X is never built (Featurizer.embed). Weights are stored as
.npy files and memory-mapped, so loading takes milliseconds and forked worker processes share the pages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fmops_pipelines.probability import softmax
from fmops_pipelines.specialist.ngram_features import Featurizer

ARRAYS = ("bag", "head_weight", "head_bias")
IDF_FILE = "idf.npy"  # with `idf` in the config: the featuriser's weight per hashed id


class NgramScorer:
    architecture = "ngram"
    fork_safe = True  # numpy, scipy and mmh3 only: worker processes forked after loading share the weights

    def __init__(self, cfg: dict, bag: np.ndarray, head_weight: np.ndarray, head_bias: np.ndarray,
                 idf: np.ndarray | None = None):
        self.cfg, self.labels, self.temperature = cfg, list(cfg["labels"]), float(cfg.get("temperature", 1.0))
        self.featurizer = Featurizer(cfg, idf)
        self.bag, self.head_weight, self.head_bias = bag, head_weight.T.copy(), head_bias
        self.featurizer.transform(["warm up"])  # the compiled kernel and its tables load now, before workers fork

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return self.featurizer.embed(texts, self.bag) @ self.head_weight + self.head_bias

    def configure(self, settings) -> None:
        """Nothing to set: one process is single-threaded; parallelism comes from worker processes."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return softmax(self.logits(texts) / self.temperature).astype(np.float32, copy=False)

    @classmethod
    def from_student(cls, student) -> NgramScorer:
        """The scorer of a trained NgramSpecialist, in memory: what serving will run (torch needed here only)."""
        from dataclasses import asdict

        head = [student.net.state_dict()[key].detach().float().cpu().numpy() for key in ("head.weight", "head.bias")]
        return cls(asdict(student.cfg), student.bag_table(), *head, idf=student.featurizer.idf)

    @staticmethod
    def export(student, directory: Path) -> Path:
        """Write a trained NgramSpecialist's config and weights as arrays (the bag table a block at a time)."""
        from dataclasses import asdict

        directory.mkdir(parents=True, exist_ok=True)
        bag, head_weight, head_bias = ARRAYS
        student.write_bag_table(directory / f"{bag}.npy")
        state = student.net.state_dict()
        for name, key in ((head_weight, "head.weight"), (head_bias, "head.bias")):  # [k, d] and [k]
            np.save(directory / f"{name}.npy", state[key].detach().float().cpu().numpy())
        if student.featurizer.idf is not None:  # whole, as the bag: memory-mapped, shared by forked workers
            np.save(directory / IDF_FILE, student.featurizer.idf)
        (directory / "config.json").write_text(json.dumps(asdict(student.cfg), indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> NgramScorer:
        cfg = json.loads((directory / "config.json").read_text())
        arrays = [np.load(directory / f"{name}.npy", mmap_mode="r") for name in ARRAYS]
        idf = np.load(directory / IDF_FILE, mmap_mode="r") if cfg.get("idf") else None
        return cls(cfg, *arrays, idf=idf)
