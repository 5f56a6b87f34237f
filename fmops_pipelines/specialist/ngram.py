"""The fast n-gram student: hashed word and character n-grams summed in a torch EmbeddingBag.

Hashing (scikit-learn's HashingVectorizer) needs no vocabulary fit, so the model is one config plus one
weight tensor, and featurising is cheap enough that inference runs orders of magnitude faster than
the foundation model it learned from.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.metrics import f1_score
from sklearn.preprocessing import normalize
from torch import nn

from fmops_pipelines.probability import fit_temperature, softmax

WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "config.json"


@dataclass
class NgramConfig:
    labels: list[str]
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] | None = None
    hash_bits: int = 20
    embed_dim: int = 16
    dropout: float = 0.2
    temperature: float = 1.0  # fitted on dev after training: soft-label students come out underconfident


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 0.001
    weight_decay: float = 0.0
    patience: int = 5
    seed: int = 0


@dataclass
class TrainHistory:
    """Per-epoch curves and the epoch whose weights were kept (best dev macro-F1)."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_dev_macro_f1: float = 0.0
    seconds: float = 0.0
    samples_per_s: float = 0.0
    device: str = "cpu"


class Featurizer:
    """Texts -> L2-normalised sparse counts over hashed word and char_wb n-grams (stateless)."""

    def __init__(self, cfg: NgramConfig):
        n = 2 ** cfg.hash_bits
        self.vectorizers = [HashingVectorizer(n_features=n, ngram_range=tuple(cfg.word_ngrams), alternate_sign=False,
                                              norm=None, lowercase=True)]
        if cfg.char_ngrams:
            self.vectorizers.append(HashingVectorizer(n_features=n, analyzer="char_wb", alternate_sign=False,
                                                      ngram_range=tuple(cfg.char_ngrams), norm=None, lowercase=True))
        self.n_features = n * len(self.vectorizers)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        X = sp.hstack([v.transform(texts) for v in self.vectorizers], format="csr")
        X.data = np.log1p(X.data)  # sublinear term frequency
        return normalize(X, norm="l2", copy=False)


class NgramNet(nn.Module):
    def __init__(self, n_features: int, embed_dim: int, n_classes: int, dropout: float):
        super().__init__()
        self.bag = nn.EmbeddingBag(n_features, embed_dim, mode="sum", sparse=True)  # sparse grads: only seen rows update
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, n_classes)
        nn.init.normal_(self.bag.weight, std=0.05)

    def forward(self, indices: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.bag(indices, offsets, per_sample_weights=weights)))


def _bag_inputs(X: sp.csr_matrix, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(X.indices.astype(np.int64)).to(device),
            torch.from_numpy(X.indptr[:-1].astype(np.int64)).to(device),
            torch.from_numpy(X.data.astype(np.float32)).to(device))


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class NgramSpecialist:
    """Featurizer + network + label names: everything needed to predict, saved as two small files."""

    def __init__(self, cfg: NgramConfig, net: NgramNet | None = None, device: torch.device | None = None):
        self.cfg = cfg
        self.featurizer = Featurizer(cfg)
        self.device = device or pick_device()
        self.net = (net or NgramNet(self.featurizer.n_features, cfg.embed_dim, len(cfg.labels), cfg.dropout)).to(self.device)

    @torch.inference_mode()
    def logits(self, texts: Sequence[str], batch_size: int = 4096) -> np.ndarray:
        self.net.eval()
        out = []
        for start in range(0, len(texts), batch_size):
            X = self.featurizer.transform(list(texts[start : start + batch_size]))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                out.append(self.net(*_bag_inputs(X, self.device)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.cfg.labels)), dtype=np.float32)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 4096) -> np.ndarray:
        return softmax(self.logits(texts, batch_size) / self.cfg.temperature)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.cfg.labels[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps(asdict(self.cfg), indent=2))
        torch.save(self.net.state_dict(), directory / WEIGHTS_FILE)
        return directory

    @classmethod
    def load(cls, directory: Path, device: torch.device | None = None) -> NgramSpecialist:
        raw = json.loads((Path(directory) / CONFIG_FILE).read_text())
        cfg = NgramConfig(**{**raw, "word_ngrams": tuple(raw["word_ngrams"]),
                             "char_ngrams": tuple(raw["char_ngrams"]) if raw["char_ngrams"] else None})
        model = cls(cfg, device=device)
        model.net.load_state_dict(torch.load(Path(directory) / WEIGHTS_FILE, map_location=model.device))
        return model


def _fingerprint(cfg: NgramConfig, train_cfg: TrainConfig, texts: Sequence[str], soft_labels: np.ndarray) -> str:
    """What a checkpoint was trained on: configs, texts and labels. A changed input never resumes."""
    digest = hashlib.sha256(json.dumps([asdict(cfg), asdict(train_cfg)], sort_keys=True, default=str).encode())
    digest.update("\x00".join(texts).encode())
    digest.update(np.ascontiguousarray(soft_labels, dtype=np.float32).tobytes())
    return digest.hexdigest()


def train_ngram(cfg: NgramConfig, train_cfg: TrainConfig, texts: Sequence[str], soft_labels: np.ndarray,
                dev_texts: Sequence[str], y_dev: np.ndarray, on_epoch=None,
                checkpoint: Path | None = None) -> tuple[NgramSpecialist, TrainHistory]:
    """Fit on probabilistic labels (soft cross-entropy); keep the epoch with the best dev macro-F1.

    With `checkpoint`, the full training state (weights, optimisers, RNGs, best epoch) is written
    after every epoch, an interrupted run on the same inputs resumes after its last finished epoch with
    the same result as an uninterrupted one, and the file is removed once training completes.
    """
    torch.manual_seed(train_cfg.seed)
    rng = np.random.default_rng(train_cfg.seed)
    model = NgramSpecialist(cfg)
    device = model.device
    X = model.featurizer.transform(list(texts))
    targets = torch.from_numpy(soft_labels.astype(np.float32))
    # A dense optimiser would touch all 2**hash_bits embedding rows every step; SparseAdam touches the seen ones.
    opts = [torch.optim.SparseAdam(list(model.net.bag.parameters()), lr=train_cfg.learning_rate),
            torch.optim.AdamW(model.net.head.parameters(), lr=train_cfg.learning_rate,
                              weight_decay=train_cfg.weight_decay)]
    history = TrainHistory(device=str(device))
    best_state, stale, first_epoch = None, 0, 1
    fingerprint = _fingerprint(cfg, train_cfg, texts, soft_labels) if checkpoint else ""
    if checkpoint and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["fingerprint"] == fingerprint:
            model.net.load_state_dict(state["net"])
            for opt, opt_state in zip(opts, state["opts"]):
                opt.load_state_dict(opt_state)
            rng.bit_generator.state = state["numpy_rng"]
            torch.set_rng_state(state["torch_rng"])
            best_state, stale, first_epoch = state["best_state"], state["stale"], state["epoch"] + 1
            history.epochs, history.best_epoch, history.best_dev_macro_f1 = (
                state["epochs"], state["best_epoch"], state["best_dev_macro_f1"])
    start = time.perf_counter()
    for epoch in range(first_epoch, train_cfg.epochs + 1):
        if stale >= train_cfg.patience:
            break
        model.net.train()
        order = rng.permutation(X.shape[0])
        total = 0.0
        for b in range(0, len(order), train_cfg.batch_size):
            idx = order[b : b + train_cfg.batch_size]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model.net(*_bag_inputs(X[idx], device))
            loss = -(targets[idx].to(device) * torch.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()
            for opt in opts:
                opt.zero_grad()
            loss.backward()
            for opt in opts:
                opt.step()
            total += loss.item() * len(idx)
        dev_pred = model.predict_proba(dev_texts).argmax(axis=1)
        dev_f1 = float(f1_score(y_dev, dev_pred, average="macro", labels=range(len(cfg.labels)), zero_division=0))
        row = {"epoch": epoch, "train_loss": total / max(len(order), 1), "dev_macro_f1": dev_f1,
               "dev_accuracy": float((dev_pred == y_dev).mean())}
        history.epochs.append(row)
        if dev_f1 > history.best_dev_macro_f1 + 1e-4 or best_state is None:
            history.best_epoch, history.best_dev_macro_f1 = epoch, dev_f1
            best_state = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
            stale = 0
        else:
            stale += 1
        if checkpoint:
            _save_checkpoint(checkpoint, {
                "fingerprint": fingerprint, "epoch": epoch, "net": model.net.state_dict(),
                "opts": [opt.state_dict() for opt in opts], "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(), "best_state": best_state, "stale": stale,
                "epochs": history.epochs, "best_epoch": history.best_epoch,
                "best_dev_macro_f1": history.best_dev_macro_f1})
        if on_epoch:
            on_epoch(row)
    history.seconds = time.perf_counter() - start
    ran = len(history.epochs) - (first_epoch - 1)  # epochs trained in this call (not the resumed ones)
    history.samples_per_s = X.shape[0] * ran / max(history.seconds, 1e-9)
    model.net.load_state_dict(best_state)
    model.cfg.temperature = fit_temperature(model.logits(dev_texts), y_dev, np.logspace(-2, 1, 61))
    if checkpoint:
        checkpoint.unlink(missing_ok=True)
    return model, history


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a crash mid-save keeps the previous epoch's checkpoint





def measure_throughput(model: NgramSpecialist, texts: Sequence[str], batch_size: int = 4096) -> float:
    """Texts per second end to end (featurising included), after one warm-up batch."""
    model.predict_proba(texts[: min(256, len(texts))], batch_size)
    start = time.perf_counter()
    model.predict_proba(texts, batch_size)
    return len(texts) / (time.perf_counter() - start)
