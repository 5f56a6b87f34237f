"""openai backend: any OpenAI-compatible chat endpoint (vLLM, TGI, Ollama, OpenAI itself).

Per text, one chat completion asks for exactly one of the verbalizers. Where the server returns
logprobs, each label scores by the best log-probability among the answer's first-token alternatives
that start its verbalizer; otherwise the answer text is parsed against the verbalizers and a reply
that names none (or several) abstains (a NaN row). Requests run with bounded concurrency, a timeout,
and retries with exponential backoff on 429 / 5xx / network errors. The API key is read from an
environment variable at request time and is never logged, cached or sent to MLflow.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fmops_pipelines.errors import FmopsError
from fmops_pipelines.fm.base import FMStats, Prompt
from fmops_pipelines.fm.cache import FMCache, cache_key, cached_compute

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EndpointError(FmopsError):
    """The endpoint kept failing after every retry, or rejected the request outright."""


def _instruction(prompt: Prompt, text: str) -> str:
    options = ", ".join(v.strip() for v in prompt.verbalizers)
    return f"{prompt.render(text)}\n\nAnswer with exactly one of: {options}."


def parse_answer(answer: str, verbalizers: Sequence[str]) -> int | None:
    """The one verbalizer the answer names (case-insensitive, whole words), else None (abstain)."""
    import re

    hits = [i for i, v in enumerate(verbalizers)
            if re.search(rf"(?<!\w){re.escape(v.strip().lower())}(?!\w)", answer.lower())]
    return hits[0] if len(hits) == 1 else None


def _label_scores(choice: dict, verbalizers: Sequence[str]) -> np.ndarray:
    """Per-label scores from one choice: logprobs when present, else a parsed answer (NaN = abstain)."""
    k = len(verbalizers)
    content = (choice.get("logprobs") or {}).get("content") or []
    if content and content[0].get("top_logprobs"):
        scores = np.full(k, -1e4, dtype=np.float32)
        for alt in content[0]["top_logprobs"]:
            token = alt["token"].strip().lower()
            for i, v in enumerate(verbalizers):
                if token and v.strip().lower().startswith(token):
                    scores[i] = max(scores[i], alt["logprob"])
        if (scores > -1e4).any():
            return scores
    parsed = parse_answer(choice.get("message", {}).get("content") or "", verbalizers)
    if parsed is None:
        return np.full(k, np.nan, dtype=np.float32)
    return np.where(np.arange(k) == parsed, 0.0, -1e4).astype(np.float32)


class OpenAICompatibleFM:
    backend = "openai"

    def __init__(self, model: str, base_url: str, api_key_env: str = "OPENAI_API_KEY", cache: FMCache | None = None,
                 max_concurrency: int = 8, timeout_s: float = 30.0, max_retries: int = 4, backoff_s: float = 0.5,
                 temperature: float = 0.0, api_key: str | None = None):
        self.model_id, self.revision = model, base_url.rstrip("/")
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        self.api_key_env, self.cache = api_key_env, cache
        self._api_key = api_key  # a resource's secret; else read from api_key_env per request
        self.max_concurrency, self.timeout_s = max_concurrency, timeout_s
        self.max_retries, self.backoff_s, self.temperature = max_retries, backoff_s, temperature
        self.stats = FMStats()
        self.supports_logprobs = True  # switched off after a server rejects the logprobs fields

    def _post(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        key = self._api_key or os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = json.dumps(payload).encode()
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                if exc.code == 400 and payload.get("logprobs"):
                    self.supports_logprobs = False  # e.g. a server without logprobs: retry as plain text
                    payload = {k: v for k, v in payload.items() if k not in ("logprobs", "top_logprobs")}
                    body = json.dumps(payload).encode()
                    continue
                if exc.code not in RETRY_STATUS or attempt == self.max_retries:
                    raise EndpointError(f"{self.url}: HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.max_retries:
                    raise EndpointError(f"{self.url}: {getattr(exc, 'reason', exc)} after {attempt + 1} tries") from None
            time.sleep(self.backoff_s * 2**attempt)
        raise EndpointError(f"{self.url}: no answer after {self.max_retries + 1} tries")

    def _ask(self, prompt: Prompt, text: str) -> np.ndarray:
        payload = {"model": self.model_id, "temperature": self.temperature, "max_tokens": 8,
                   "messages": [{"role": "user", "content": _instruction(prompt, text)}]}
        if self.supports_logprobs:
            payload.update(logprobs=True, top_logprobs=20)
        reply = self._post(payload)
        return _label_scores(reply["choices"][0], prompt.verbalizers)

    def score(self, texts: Sequence[str], prompt: Prompt) -> np.ndarray:
        params = {"verbalizers": list(prompt.verbalizers), "temperature": self.temperature}
        keys = [cache_key(self.backend, self.model_id, self.revision, _instruction(prompt, t), params) for t in texts]
        vectors = cached_compute(self.cache, keys, list(texts), lambda todo: self._ask_all(prompt, todo), self.stats)
        return np.stack(vectors) if keys else np.zeros((0, len(prompt.verbalizers)), np.float32)

    def _ask_all(self, prompt: Prompt, texts: list[str]) -> list[np.ndarray]:
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(lambda t: self._ask(prompt, t), texts))

    def measure_throughput(self, texts: Sequence[str], prompt: Prompt | None = None) -> float:
        prompt = prompt or Prompt("{text}", ("yes", "no"))
        start = time.perf_counter()
        self._ask_all(prompt, list(texts))
        return len(texts) / (time.perf_counter() - start)
