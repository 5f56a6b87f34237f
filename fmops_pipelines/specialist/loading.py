"""Load any saved student folder by the architecture its config names (the base module knows no subclass)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import torch

from fmops_pipelines.specialist.student import CONFIG_FILE, Student

# architecture -> "module:class", imported on demand so loading an n-gram model never imports transformers
ARCHITECTURES = {"ngram": "fmops_pipelines.specialist.ngram:NgramSpecialist",
                 "encoder": "fmops_pipelines.specialist.encoder:EncoderSpecialist"}


def load_student(directory: Path, device: torch.device | None = None) -> Student:
    """Any saved student folder; configs written before `architecture` existed are n-gram students."""
    raw = json.loads((Path(directory) / CONFIG_FILE).read_text())
    kind = raw.get("architecture", "ngram")
    if kind not in ARCHITECTURES:
        raise ValueError(f"{directory / CONFIG_FILE}: unknown student architecture '{kind}'")
    module, cls = ARCHITECTURES[kind].split(":")
    return getattr(importlib.import_module(module), cls).load(Path(directory), device=device)
