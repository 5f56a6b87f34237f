"""Embedding backend: zero-shot classification by cosine similarity between text and label prompts.

Text embeddings do not depend on the prompt, so every candidate prompt reuses one cached embedding per
text; that is what makes scoring dozens of prompts cost one pass of the model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from fmops_pipelines.fm.base import FMStats, Prompt
from fmops_pipelines.fm.cache import FMCache, cache_key, cached_compute
from fmops_pipelines.fm.local_models import PACKAGED_MINILM, embedding_dimension, model_revision, resolve_model_path
from fmops_pipelines.fm.probe import fit_probe, probe_scores
from fmops_pipelines.memory import trim_heap
from fmops_pipelines.throughput import fm_texts_per_s

# Uncached texts are encoded (and cached) this many at a time: a crash loses at most one chunk, and progress is
# reported between chunks (a few seconds each on 2 CPU cores); sorting by length stays within a chunk.
ENCODE_CHUNK = 1024
TRIM_EVERY = 256  # texts encoded between heap trims: the peak grew ~130 MB per 1,024 texts untrimmed
# Texts per forward pass where the spec sets none. On CPU 16: as fast as 64 on 2 cores (SMS texts, MiniLM, six
# alternating runs: 167-180 texts/s against 153-164) with a third of its transient memory (+153-161 MB over the
# loaded model against +511-549: attention grows with batch x length squared, and the longest texts set the peak).
# On a GPU 64, as before (its memory is the GPU's, and larger batches are what keep it busy).
CPU_BATCH, GPU_BATCH = 16, 64


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), as oneDNN, which autocast runs on, sees it.
    Without it autocast emulates bf16: MiniLM at 0.14x fp32's texts/s on a 2-core AVX2 host (21 against 153 on
    SMS texts, batch 16; benchmarks/fm_runtimes.py, 2026-12-07), where a host with it ran 1.73x."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class EmbeddingFM:
    backend = "embedding"

    def __init__(self, model: str = PACKAGED_MINILM, cache: FMCache | None = None, batch_size: int | None = None,
                 device: str | None = None, precision: str = "fp32", runtime: str = "torch"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.path = resolve_model_path(model)
        self.model_id = model
        self.revision = model_revision(self.path)
        self.cache = cache
        self.batch_size = batch_size  # None: CPU_BATCH or GPU_BATCH, by where the model runs (`batch`)
        self.device = device
        # torch fp32 / bf16 (autocast), or onnx fp32 / int8 (fm/onnx_encoder.py): spec.FMSpec.runtime, precision
        self.runtime = runtime
        self.precision = precision
        # answers of each runtime and precision are cached apart; torch fp32 keys as they always were
        self._key_params = ({"runtime": runtime, "precision": precision} if runtime != "torch"
                            else {"precision": precision} if precision != "fp32" else None)
        self.stats = FMStats()
        self._model = None
        self._onnx = None
        self._probes: dict[str, object] = {}
        self._token_vectors = None

    @property
    def model(self):
        if self._model is None:
            import torch
            from sentence_transformers import SentenceTransformer

            # under onnx the graph runs on CPU (CPUExecutionProvider), so the model's own modules do too
            gpu = torch.cuda.is_available() and self.runtime == "torch"
            device = self.device or ("cuda" if gpu else "cpu")
            self._model = SentenceTransformer(str(self.path), device=device)
        return self._model

    def precision_warning(self) -> str | None:
        """One line for a spec asking bf16 where the FM would run emulated bf16 on a CPU (None where it would not):
        the spec's choice is kept (its answers are cached apart), the user told what it costs. Loads no model."""
        if self.precision != "bf16" or self.runtime != "torch":
            return None
        import torch

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device != "cpu" or native_bf16():
            return None
        return ("fm.precision bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX), so autocast emulates it, "
                "several times slower than fp32 (0.14x on a 2-core AVX2 host); set fm.precision: fp32 on this machine")

    @property
    def batch(self) -> int:
        """Texts per forward pass: the spec's fm.batch_size, else CPU_BATCH or GPU_BATCH by the model's device."""
        if self.batch_size:
            return self.batch_size
        return GPU_BATCH if self.runtime == "torch" and self.model.device.type == "cuda" else CPU_BATCH

    @property
    def onnx(self):
        """The ONNX Runtime encoder, converting the model's weights at first use (cached for later runs)."""
        if self._onnx is None:
            from fmops_pipelines.fm.onnx_encoder import OnnxEncoder, ensure_converted

            graph = ensure_converted(self.model, self.model_id, self.revision, self.precision)
            self._onnx = OnnxEncoder(self.model, graph)
        return self._onnx

    def _encode_uncached(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        # Sorting by length keeps padding low inside each batch (length bucketing).
        order = np.argsort([len(t) for t in texts], kind="stable")
        ordered = [texts[i] for i in order]
        parts = []
        for start in range(0, len(ordered), TRIM_EVERY):
            part = ordered[start:start + TRIM_EVERY]
            if self.runtime == "onnx":
                parts.append(self.onnx.encode(part, self.batch))
            else:
                with torch.autocast(self.model.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                    parts.append(self.model.encode(part, batch_size=self.batch, normalize_embeddings=True,
                                                   convert_to_numpy=True, show_progress_bar=False))
            trim_heap()  # what the batches freed goes back now, not at the step's end (fmops_pipelines/memory.py)
        dims = embedding_dimension(self.model)
        vecs = np.concatenate(parts) if parts else np.zeros((0, dims), dtype=np.float32)
        out = np.empty_like(vecs)
        out[order] = vecs
        return out.astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings, from the cache where possible; counts calls and hits."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, embedding_dimension(self.model)), dtype=np.float32)
        keys = [cache_key(self.backend, self.model_id, self.revision, t, self._key_params) for t in texts]
        return cached_compute(self.cache, keys, texts, self._encode_uncached, self.stats, ENCODE_CHUNK)

    def embed_tokens(self, texts: Sequence[str]) -> np.ndarray:
        """The texts as pooled input token vectors (fm/token_vectors.py): no forward pass, so nothing to cache."""
        if self._token_vectors is None:
            from fmops_pipelines.fm.token_vectors import TokenVectors

            self._token_vectors = TokenVectors.of_sentence_transformer(self.model)
        return self._token_vectors.embed(texts)

    def score(self, texts: Sequence[str], prompt: Prompt) -> np.ndarray:
        """Cosine similarity to each label's prompt, or (few-shot) to the centroid of its example texts, or
        (a few-shot probe) a logistic regression's log-probabilities, fitted on the examples (fm/probe.py)."""
        from fmops_pipelines.fm.exploration import few_shot_kind

        if few_shot_kind(prompt) == "probe":
            return probe_scores(self._probe(prompt), self.embed(texts))
        if prompt.examples:
            centroids = np.stack([self.embed(list(ex)).mean(axis=0) for ex in prompt.examples])
            labels = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
        else:
            labels = self.embed(prompt.label_texts())
        return self.embed(texts) @ labels.T

    def _probe(self, prompt: Prompt):
        """One fit per set of examples: a few-shot labeler is scored on the pool, dev folds and every row."""
        if prompt.id not in self._probes:
            X = np.concatenate([self.embed(list(ex)) for ex in prompt.examples])
            y = np.repeat(np.arange(len(prompt.examples)), [len(ex) for ex in prompt.examples])
            self._probes[prompt.id] = fit_probe(X, y, len(prompt.examples))
        return self._probes[prompt.id]

    def measure_throughput(self, texts: Sequence[str], min_seconds: float | None = None) -> float:
        texts = list(texts)
        self._encode_uncached(texts[: min(32, len(texts))])  # warm-up: weights, kernels, tokenizer
        return fm_texts_per_s(self._encode_uncached, texts, min_seconds)
