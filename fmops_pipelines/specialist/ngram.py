"""The fast n-gram student: hashed word and character n-grams summed in a torch EmbeddingBag.

Hashing (hashing.py; models saved before it used scikit-learn's HashingVectorizer) needs no vocabulary fit, so the model is one config plus one
weight tensor, and featurising is cheap enough that inference runs orders of magnitude faster than
the foundation model it learned from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from fmops_pipelines.specialist.ngram_features import Featurizer
from fmops_pipelines.specialist.student import CONFIG_FILE, Student, autocast, pick_device, write_config
from fmops_pipelines.specialist.training_loop import TrainConfig, TrainHistory, fingerprint, fit, noise_aware_loss
from fmops_pipelines.specialist.training_memo import memo_path

WEIGHTS_FILE = "weights.pt"


@dataclass
class NgramConfig:
    labels: list[str]
    architecture: str = "ngram"
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] | None = None
    hash_bits: int = 20
    embed_dim: int = 16
    dropout: float = 0.2
    temperature: float = 1.0  # fitted on dev after training: soft-label students come out underconfident
    word_hashing: str = "token-murmur"  # "sklearn": HashingVectorizer, what models saved before it existed used
    char_hashing: str = "codepoint"  # "sklearn": HashingVectorizer's char_wb, what models saved before it existed used
    family_norm: str = "each"  # word and char n-grams normalised apart; "joint": models saved before it existed
    averaged: int = 1  # >1: the mean of this many students' logits, one table (averaging.py)


class NgramNet(nn.Module):
    def __init__(self, n_features: int, embed_dim: int, n_classes: int, dropout: float, draw: bool = True):
        """draw=False: the caller replaces the weights (a saved model on the meta device), so none are drawn: on meta,
        nn.init's reference kernels would import torch._dynamo (~0.8 s) to draw nothing."""
        super().__init__()
        # sparse grads: only seen rows update. `_weight` leaves the table undrawn (EmbeddingBag would fill its
        # 2**20+ rows with N(0, 1) only for us to redraw them): one draw, ~0.15 s less per student at 1 thread
        self.bag = nn.EmbeddingBag(n_features, embed_dim, mode="sum", sparse=True,
                                   _weight=torch.empty(n_features, embed_dim))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, n_classes)
        if draw:
            nn.init.normal_(self.bag.weight, std=0.05)

    def forward(self, indices: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.bag(indices, offsets, per_sample_weights=weights)))


def _bag_inputs(X: sp.csr_matrix, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(X.indices.astype(np.int64)).to(device),
            torch.from_numpy(X.indptr[:-1].astype(np.int64)).to(device),
            torch.from_numpy(X.data.astype(np.float32)).to(device))


class NgramSpecialist(Student):
    """Featurizer + network + label names: everything needed to predict, saved as two small files."""

    architecture = "ngram"

    def __init__(self, cfg: NgramConfig, net: NgramNet | None = None, device: torch.device | None = None):
        self.cfg = cfg
        self.featurizer = Featurizer(cfg)
        self.device = device or pick_device()
        self.net = (net or NgramNet(self.featurizer.n_features, cfg.embed_dim, len(cfg.labels), cfg.dropout)).to(self.device)

    @torch.inference_mode()
    def logits(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        self.net.eval()
        batch_size = batch_size or 4096
        out = []
        for start in range(0, len(texts), batch_size):
            X = self.featurizer.transform(list(texts[start : start + batch_size]))
            with autocast(self.device):
                out.append(self.net(*_bag_inputs(X, self.device)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.cfg.labels)), dtype=np.float32)

    def save(self, directory: Path) -> Path:
        write_config(directory, asdict(self.cfg))
        torch.save(self.net.state_dict(), directory / WEIGHTS_FILE)
        return directory

    @classmethod
    def load(cls, directory: Path, device: torch.device | None = None) -> NgramSpecialist:
        raw = json.loads((Path(directory) / CONFIG_FILE).read_text())
        cfg = NgramConfig(**{"word_hashing": "sklearn", "char_hashing": "sklearn", "family_norm": "joint", **raw, "word_ngrams": tuple(raw["word_ngrams"]),
                             "char_ngrams": tuple(raw["char_ngrams"]) if raw["char_ngrams"] else None})
        device = device or pick_device()
        with torch.device("meta"):  # the saved weights replace the initial ones: none are drawn (2**20 rows each)
            net = NgramNet(Featurizer(cfg).n_features, cfg.embed_dim, len(cfg.labels), cfg.dropout, draw=False)
        net.load_state_dict(torch.load(Path(directory) / WEIGHTS_FILE, map_location=device), assign=True)
        return cls(cfg, net=net, device=device)


def train_ngram(cfg: NgramConfig, train_cfg: TrainConfig, texts: Sequence[str], soft_labels: np.ndarray,
                dev_texts: Sequence[str], y_dev: np.ndarray, on_epoch=None,
                checkpoint: Path | None = None) -> tuple[NgramSpecialist, TrainHistory]:
    """Fit on probabilistic labels with the noise-aware loss; keep the best dev epoch; calibrate on dev. With a
    `checkpoint`, the finished training is memoised beside it (training_memo): the same training again is free."""
    torch.manual_seed(train_cfg.seed)
    model = NgramSpecialist(cfg, device=train_cfg.torch_device())
    device = model.device
    targets = torch.from_numpy(soft_labels.astype(np.float32))
    features = []  # the train rows' features, computed by the first batch: a memoised training needs none

    def optimizers() -> list:
        # A dense optimiser would touch all 2**hash_bits embedding rows every step; SparseAdam touches the seen ones.
        return [torch.optim.SparseAdam(list(model.net.bag.parameters()), lr=train_cfg.learning_rate),
                torch.optim.AdamW(model.net.head.parameters(), lr=train_cfg.learning_rate,
                                  weight_decay=train_cfg.weight_decay)]

    def batch_loss(idx: np.ndarray) -> torch.Tensor:
        if not features:
            features.append(model.featurizer.transform(list(texts)))
        with autocast(device):
            logits = model.net(*_bag_inputs(features[0][idx], device))
        return noise_aware_loss(logits, targets[idx].to(device), train_cfg.loss)

    history = fit(model.net, optimizers, [], len(texts), batch_loss,
                  lambda: model.predict_proba(dev_texts).argmax(axis=1), y_dev, len(cfg.labels), train_cfg, device,
                  fingerprint([cfg, train_cfg], texts, soft_labels) if checkpoint else "", checkpoint, on_epoch,
                  memo=memo_path(checkpoint) if checkpoint else None)
    model.calibrate(dev_texts, y_dev)
    return model, history
