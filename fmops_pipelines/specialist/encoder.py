"""The quality student: a pretrained transformer encoder (default the packaged all-MiniLM-L6-v2, or any
local Hugging Face encoder folder) fine-tuned end to end with a mean-pooled linear head.

Mean pooling is how sentence-transformers models were trained, so the head starts from embeddings that
already separate topics; the encoder is then fine-tuned on the probabilistic labels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fmops_pipelines.specialist.student import CONFIG_FILE, Student, autocast, pick_device, write_config
from fmops_pipelines.specialist.training_loop import TrainConfig, TrainHistory, fingerprint, fit, noise_aware_loss

ENCODER_DIR = "encoder"
HEAD_FILE = "head.pt"


@dataclass
class EncoderConfig:
    labels: list[str]
    architecture: str = "encoder"
    model: str = "all-MiniLM-L6-v2"  # what it was fine-tuned from (the packaged name or a local path)
    max_length: int = 128
    dropout: float = 0.1
    temperature: float = 1.0


class EncoderNet(nn.Module):
    def __init__(self, encoder: nn.Module, n_classes: int, dropout: float):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


def _pad(sequences: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


class EncoderSpecialist(Student):
    architecture = "encoder"

    def __init__(self, cfg: EncoderConfig, weights_from: Path, device: torch.device | None = None,
                 head: dict | None = None):
        from transformers import AutoModel, AutoTokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.cfg = cfg
        self.device = device or pick_device()
        self.tokenizer = AutoTokenizer.from_pretrained(str(weights_from))
        encoder = AutoModel.from_pretrained(str(weights_from))
        self.net = EncoderNet(encoder, len(cfg.labels), cfg.dropout).to(self.device)
        if head is not None:
            self.net.head.load_state_dict(head)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), truncation=True, max_length=self.cfg.max_length)["input_ids"]

    def forward_ids(self, sequences: list[list[int]]) -> torch.Tensor:
        with autocast(self.device):
            return self.net(*_pad(sequences, self.tokenizer.pad_token_id or 0, self.device)).float()

    @torch.inference_mode()
    def logits(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Batches of similar length (sorted), so short texts do not pay for a long one's padding."""
        self.net.eval()
        batch_size = batch_size or (256 if self.device.type == "cuda" else 64)
        ids = self.tokenize(texts)
        order = np.argsort([len(s) for s in ids], kind="stable")
        out = np.zeros((len(ids), len(self.cfg.labels)), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self.forward_ids([ids[i] for i in chunk]).cpu().numpy()
        return out

    def save(self, directory: Path) -> Path:
        write_config(directory, asdict(self.cfg))
        self.net.encoder.save_pretrained(directory / ENCODER_DIR)
        self.tokenizer.save_pretrained(directory / ENCODER_DIR)
        torch.save(self.net.head.state_dict(), directory / HEAD_FILE)
        return directory

    @classmethod
    def load(cls, directory: Path, device: torch.device | None = None) -> EncoderSpecialist:
        cfg = EncoderConfig(**json.loads((Path(directory) / CONFIG_FILE).read_text()))
        head = torch.load(Path(directory) / HEAD_FILE, map_location="cpu")
        return cls(cfg, Path(directory) / ENCODER_DIR, device=device, head=head)


def train_encoder(cfg: EncoderConfig, train_cfg: TrainConfig, texts: Sequence[str], soft_labels: np.ndarray,
                  dev_texts: Sequence[str], y_dev: np.ndarray, on_epoch=None,
                  checkpoint: Path | None = None) -> tuple[EncoderSpecialist, TrainHistory]:
    """Fine-tune the encoder and head together (AdamW, linear warm-up and decay, gradient clipping), on
    length-bucketed batches: padding, not text, was most of a random batch's tokens."""
    from transformers import get_linear_schedule_with_warmup

    from fmops_pipelines.fm.local_models import resolve_model_path

    torch.manual_seed(train_cfg.seed)
    model = EncoderSpecialist(cfg, resolve_model_path(cfg.model, "specialist.encoder.model"),
                              device=train_cfg.torch_device())
    device = model.device
    ids = model.tokenize(texts)
    targets = torch.from_numpy(soft_labels.astype(np.float32))
    opt = torch.optim.AdamW(model.net.parameters(), lr=train_cfg.learning_rate, weight_decay=train_cfg.weight_decay)
    steps = -(-len(ids) // train_cfg.batch_size) * train_cfg.epochs
    sched = get_linear_schedule_with_warmup(opt, int(train_cfg.warmup_ratio * steps), steps)

    def batch_loss(idx: np.ndarray) -> torch.Tensor:
        return noise_aware_loss(model.forward_ids([ids[i] for i in idx]), targets[idx].to(device), train_cfg.loss)

    history = fit(model.net, [opt], [sched], len(ids), batch_loss,
                  lambda: model.predict_proba(dev_texts).argmax(axis=1), y_dev, len(cfg.labels), train_cfg, device,
                  fingerprint([cfg, train_cfg], texts, soft_labels) if checkpoint else "", checkpoint, on_epoch,
                  max_grad_norm=1.0, lengths=np.array([len(s) for s in ids]))
    model.calibrate(dev_texts, y_dev)
    return model, history
