"""hf-generative backend: a local Hugging Face causal or seq2seq LM as a zero-shot classifier.

Each label is scored by the log-likelihood of its verbalizer after the rendered prompt, so there is no
free-text parsing. All (text, label) pairs of a batch are sorted by length before padding (length
bucketing), which is where batching pays: a batch of similar lengths wastes little compute on pads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fmops_pipelines.errors import SpecError
from fmops_pipelines.fm.base import FMStats, Prompt
from fmops_pipelines.fm.cache import FMCache, cache_key, cached_compute
from fmops_pipelines.fm.local_models import model_revision
from fmops_pipelines.throughput import fm_texts_per_s


class GenerativeFM:
    backend = "hf-generative"

    def __init__(self, model: str, cache: FMCache | None = None, batch_size: int = 16, device: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.path = Path(model).expanduser()
        if not (self.path / "config.json").is_file():
            raise SpecError(f"fm.model: '{model}' is not a local Hugging Face model folder (no config.json)")
        self.model_id, self.revision = model, model_revision(self.path)
        self.cache, self.batch_size, self.device = cache, batch_size, device
        self.stats = FMStats()
        self._loaded = None

    def _load(self):
        """Tokenizer + model (causal or seq2seq, read from the config); bf16 on cuda, fp32 on CPU."""
        if self._loaded is None:
            import torch
            from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

            device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
            config = AutoConfig.from_pretrained(self.path)
            cls = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
            model = cls.from_pretrained(self.path, dtype=dtype).to(device).eval()
            tokenizer = AutoTokenizer.from_pretrained(self.path)
            self._loaded = (tokenizer, model, device, bool(config.is_encoder_decoder))
        return self._loaded

    def _pad_id(self, tokenizer) -> int:
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)

    def _pairs(self, prompts: list[str], verbalizers: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        tokenizer = self._load()[0]
        enc = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        verb = tokenizer(list(verbalizers), add_special_tokens=False)["input_ids"]
        if any(len(v) == 0 for v in verb):
            raise SpecError(f"prompts: a verbalizer tokenizes to nothing: {list(verbalizers)}")
        start = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        return [(start + p, v) for p in enc for v in verb]

    def _loglik(self, pairs: list[tuple[list[int], list[int]]], batch_size: int, bucket: bool) -> np.ndarray:
        """Sum of the verbalizer tokens' log-probabilities for each (prompt ids, verbalizer ids) pair."""
        import torch

        tokenizer, model, device, seq2seq = self._load()
        pad = self._pad_id(tokenizer)
        order = np.argsort([len(p) + len(v) for p, v in pairs], kind="stable") if bucket else np.arange(len(pairs))
        out = np.empty(len(pairs), dtype=np.float64)
        with torch.inference_mode():
            for b in range(0, len(order), batch_size):
                idx = order[b : b + batch_size]
                if seq2seq:
                    out[idx] = self._seq2seq_batch([pairs[i] for i in idx], model, device, pad)
                else:
                    out[idx] = self._causal_batch([pairs[i] for i in idx], model, device, pad)
        return out

    @staticmethod
    def _causal_batch(batch, model, device, pad: int) -> np.ndarray:
        import torch

        seqs = [p + v for p, v in batch]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            ids[r, : len(s)], mask[r, : len(s)] = torch.tensor(s), 1
        logp = torch.log_softmax(model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float(), -1)
        scores = []
        for r, (p, v) in enumerate(batch):
            positions = torch.arange(len(p) - 1, len(p) + len(v) - 1)
            scores.append(float(logp[r, positions, torch.tensor(v)].sum()))
        return np.array(scores)

    @staticmethod
    def _seq2seq_batch(batch, model, device, pad: int) -> np.ndarray:
        import torch

        enc_w, dec_w = max(len(p) for p, _ in batch), max(len(v) for _, v in batch)
        ids = torch.full((len(batch), enc_w), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full((len(batch), dec_w), -100, dtype=torch.long)
        for r, (p, v) in enumerate(batch):
            ids[r, : len(p)], mask[r, : len(p)], labels[r, : len(v)] = torch.tensor(p), 1, torch.tensor(v)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).logits
        logp = torch.log_softmax(logits.float(), -1)
        keep = labels.to(device) != -100
        token = torch.gather(logp, 2, labels.clamp(min=0).to(device).unsqueeze(-1)).squeeze(-1)
        return (token * keep).sum(dim=1).cpu().numpy()

    def _single_token_ids(self, verbalizers: Sequence[str]) -> list[int] | None:
        tokenizer, _, _, seq2seq = self._load()
        ids = tokenizer(list(verbalizers), add_special_tokens=False)["input_ids"]
        return [v[0] for v in ids] if not seq2seq and all(len(v) == 1 for v in ids) else None

    def _next_token_scores(self, rendered: list[str], token_ids: list[int], batch_size: int, bucket: bool) -> np.ndarray:
        """Causal LM, one-token verbalizers: every label's score from one forward pass over the prompt."""
        import torch

        tokenizer, model, device, _ = self._load()
        start = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        prompts = [start + p for p in tokenizer(rendered, add_special_tokens=False)["input_ids"]]
        order = np.argsort([len(p) for p in prompts], kind="stable") if bucket else np.arange(len(prompts))
        out = np.empty((len(prompts), len(token_ids)), dtype=np.float32)
        pad, targets = self._pad_id(tokenizer), torch.tensor(token_ids, device=device)
        with torch.inference_mode():
            for b in range(0, len(order), batch_size):
                idx = order[b : b + batch_size]
                width = max(len(prompts[i]) for i in idx)
                ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for r, i in enumerate(idx):
                    ids[r, : len(prompts[i])], mask[r, : len(prompts[i])] = torch.tensor(prompts[i]), 1
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                last = mask.sum(dim=1).to(device) - 1
                logp = torch.log_softmax(logits[torch.arange(len(idx), device=device), last].float(), -1)
                out[idx] = logp[:, targets].cpu().numpy()
        return out

    def _score_uncached(self, rendered: list[str], verbalizers: Sequence[str], batch_size: int, bucket: bool,
                        share_prompt: bool = True) -> np.ndarray:
        """Scores [n, k]. With one-token verbalizers (and share_prompt) a causal LM reads each prompt once
        for all labels; otherwise every (prompt, verbalizer) pair is its own sequence."""
        single = self._single_token_ids(verbalizers) if share_prompt else None
        if single is not None:
            return self._next_token_scores(rendered, single, batch_size, bucket)
        scores = self._loglik(self._pairs(rendered, verbalizers), batch_size, bucket)
        return scores.reshape(len(rendered), len(verbalizers)).astype(np.float32)

    def score(self, texts: Sequence[str], prompt: Prompt) -> np.ndarray:
        """log P(verbalizer | rendered prompt) per label; cached per (model, rendered prompt, verbalizers)."""
        rendered = [prompt.render(t) for t in texts]
        params = {"verbalizers": list(prompt.verbalizers)}
        keys = [cache_key(self.backend, self.model_id, self.revision, r, params) for r in rendered]
        if not keys:
            return np.zeros((0, len(prompt.verbalizers)), np.float32)
        return cached_compute(self.cache, keys, rendered, lambda todo: self._score_uncached(
            todo, prompt.verbalizers, self.batch_size, bucket=True), self.stats)

    def measure_throughput(self, texts: Sequence[str], prompt: Prompt | None = None, batch_size: int | None = None,
                           bucket: bool = True, share_prompt: bool = True, min_seconds: float | None = None) -> float:
        """Texts/s, uncached (min_seconds: on the shortest prefix that takes about that long). batch_size=1,
        bucket=False, share_prompt=False is the naive labeler: one sequence per (text, label), one at a time."""
        prompt = prompt or Prompt("{text}\nAnswer:", (" yes", " no"))
        rendered = [prompt.render(t) for t in texts]
        batch_size = batch_size or self.batch_size
        self._score_uncached(rendered[:4], prompt.verbalizers, batch_size, bucket, share_prompt)  # warm-up
        return fm_texts_per_s(lambda chunk: self._score_uncached(chunk, prompt.verbalizers, batch_size, bucket,
                                                                 share_prompt), rendered, min_seconds, batch_size)
