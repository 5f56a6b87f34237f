"""The one FM interface: a batch of texts and a prompt in, per-label scores out."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Prompt:
    """A labeler's prompt and one verbalizer per label.

    Embedding backend: the template has a `{label}` slot; each filled-in template is a label prompt the
    text is compared with. Generative backends: the template has a `{text}` slot and the verbalizers
    are the answers whose likelihood is scored. Its identity is its content hash, so an edited prompt
    is a new labeler with a new id.
    """

    template: str
    verbalizers: tuple[str, ...]
    examples: tuple[tuple[str, ...], ...] = ()  # few-shot: gold example texts per label (from dev)

    @property
    def id(self) -> str:
        payload = json.dumps([self.template, list(self.verbalizers)] + ([list(map(list, self.examples))]
                             if self.examples else []), ensure_ascii=False)
        return "p_" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:10]

    def label_texts(self) -> list[str]:
        return [self.template.replace("{label}", v) for v in self.verbalizers]

    def render(self, text: str) -> str:
        return self.template.replace("{text}", text)


@dataclass
class FMStats:
    """What labeling cost: texts sent to the model vs answered from the cache, and the asked rows that got no
    usable answer, by reason (an answer outside the label set, or an endpoint fault that outlived its retries)."""

    calls: int = 0
    cache_hits: int = 0
    seconds: float = 0.0
    abstains: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"fm_calls": self.calls, "fm_cache_hits": self.cache_hits, "fm_seconds": round(self.seconds, 3),
                "fm_abstains": dict(sorted(self.abstains.items()))}


def precision_warning(fm) -> str | None:
    """What the FM says its precision costs on this machine, in one line (None: nothing, or a backend without
    precisions): fm.embedding.EmbeddingFM.precision_warning."""
    warn = getattr(fm, "precision_warning", None)
    return warn() if warn is not None else None


def with_fm_usage(frame, stats: FMStats):
    """Attach what producing this frame cost in FM calls; it travels with the stored asset (Parquet keeps
    DataFrame.attrs), so a later stage reads it as an input instead of from another asset's metadata."""
    frame.attrs["fm_usage"] = stats.as_dict()
    return frame


def fm_usage(*frames) -> dict:
    """FM calls, cache hits and abstains by reason, summed over frames made by with_fm_usage."""
    usages = [f.attrs.get("fm_usage", {}) for f in frames]
    abstains = sum((Counter(u.get("fm_abstains") or {}) for u in usages), Counter())
    return {**{k: sum(int(u.get(k, 0)) for u in usages) for k in ("fm_calls", "fm_cache_hits")},
            "fm_abstains": dict(sorted(abstains.items()))}


class FoundationModel(Protocol):
    backend: str
    model_id: str
    revision: str
    stats: FMStats

    def score(self, texts: Sequence[str], prompt: Prompt) -> np.ndarray:
        """Per-label scores, shape [len(texts), len(prompt.verbalizers)]; higher means more likely."""

    def measure_throughput(self, texts: Sequence[str], min_seconds: float | None = None) -> float:
        """Texts per second for uncached inference on these texts (min_seconds: on the shortest prefix that
        takes about that long, fmops_pipelines.throughput)."""
