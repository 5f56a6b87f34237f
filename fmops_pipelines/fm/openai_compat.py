"""openai backend: any OpenAI-compatible chat endpoint (vLLM, TGI, Ollama, OpenAI itself).

Per text, one chat completion asks for exactly one of the verbalizers. Where the server returns
logprobs, each label scores by the best log-probability among the answer's first-token alternatives
that start its verbalizer; otherwise the answer text is parsed against the verbalizers and a reply
that names none (or several) abstains (a NaN row, cached, counted as "off_label"). Requests run with
bounded concurrency and a timeout; 429 / 5xx, timeouts, dropped connections and replies that are not a
chat completion are retried with exponential backoff, after which the row abstains for that reason (not
cached: the next run asks again). Many failed rows in a row mean the endpoint is down, not a row: the
step stops with one line. The API key is read from an environment variable at request time and is never
logged, cached or sent to MLflow.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fmops_pipelines.errors import FmopsError
from fmops_pipelines.fm.base import FMStats, Prompt
from fmops_pipelines.fm.cache import FMCache, NoAnswer, cache_key, cached_compute
from fmops_pipelines.throughput import fm_texts_per_s

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}  # the server may answer next time: retried with backoff
ROW_REJECTED_STATUS = {400, 413, 422}  # this request (e.g. a text too long for the context): the row abstains


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


class _RowFailure(Exception):
    """One row's request failed in a way that retrying may fix (5xx, 429, timeout, dropped connection, a reply
    that is not the JSON asked for); after the last retry the row abstains for `reason`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class OpenAICompatibleFM:
    backend = "openai"

    def __init__(self, model: str, base_url: str, api_key_env: str = "OPENAI_API_KEY", cache: FMCache | None = None,
                 max_concurrency: int = 8, timeout_s: float = 30.0, max_retries: int = 4, backoff_s: float = 0.5,
                 temperature: float = 0.0, api_key: str | None = None, max_consecutive_failures: int = 16):
        self.model_id, self.revision = model, base_url.rstrip("/")
        self.url = f"{base_url.rstrip('/')}/chat/completions"
        self.api_key_env, self.cache = api_key_env, cache
        self._api_key = api_key  # a resource's secret; else read from api_key_env per request
        self.max_concurrency, self.timeout_s = max_concurrency, timeout_s
        self.max_retries, self.backoff_s, self.temperature = max_retries, backoff_s, temperature
        self.max_consecutive_failures = max_consecutive_failures
        self.stats = FMStats()
        self.supports_logprobs = True  # switched off after a server rejects the logprobs fields
        self._lock = threading.Lock()
        self._failures_in_a_row, self._fatal = 0, None

    def _post_once(self, body: bytes, headers: dict) -> dict:
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code in RETRY_STATUS or exc.code in ROW_REJECTED_STATUS:
                raise _RowFailure(f"http_{exc.code}", f"HTTP {exc.code} {exc.reason}") from None
            raise EndpointError(f"{self.url}: HTTP {exc.code} {exc.reason}") from None  # key, URL or model wrong
        except TimeoutError as exc:
            raise _RowFailure("timeout", f"no reply within {self.timeout_s:g} s") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _RowFailure("timeout", f"no reply within {self.timeout_s:g} s") from None
            raise _RowFailure("connection", str(exc.reason)) from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise _RowFailure("connection", f"{type(exc).__name__}: {exc}") from None
        try:
            reply = json.loads(raw)
            reply["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _RowFailure("malformed_reply", f"not a chat completion: {raw[:80]!r}") from None
        return reply

    def _post(self, payload: dict) -> dict:
        """The reply, after up to max_retries retries with exponential backoff; raises _RowFailure when every
        try failed, EndpointError when the endpoint refuses the request itself (401, 403, 404)."""
        headers = {"Content-Type": "application/json"}
        key = self._api_key or os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        attempt = 0
        while True:
            try:
                return self._post_once(json.dumps(payload).encode(), headers)
            except _RowFailure as failure:
                if failure.reason == "http_400" and payload.get("logprobs"):
                    self.supports_logprobs = False  # e.g. a server without logprobs: retry as plain text
                    payload = {k: v for k, v in payload.items() if k not in ("logprobs", "top_logprobs")}
                    continue
                if attempt == self.max_retries or failure.reason in {f"http_{c}" for c in ROW_REJECTED_STATUS}:
                    raise
            time.sleep(self.backoff_s * 2**attempt)
            attempt += 1

    def _ask(self, prompt: Prompt, text: str) -> np.ndarray | NoAnswer:
        if self._fatal is not None:
            return NoAnswer("not_asked", len(prompt.verbalizers))
        payload = {"model": self.model_id, "temperature": self.temperature, "max_tokens": 8,
                   "messages": [{"role": "user", "content": _instruction(prompt, text)}]}
        if self.supports_logprobs:
            payload.update(logprobs=True, top_logprobs=20)
        try:
            reply = self._post(payload)
        except _RowFailure as failure:
            with self._lock:
                self._failures_in_a_row += 1
                if self._failures_in_a_row >= self.max_consecutive_failures and self._fatal is None:
                    self._fatal = EndpointError(
                        f"{self.url}: gave up after {self._failures_in_a_row} rows in a row failed "
                        f"{self.max_retries + 1} tries each (last: {failure})"
                        + ("; the rows answered before are cached" if self.cache is not None else ""))
            return NoAnswer(failure.reason, len(prompt.verbalizers))
        with self._lock:
            self._failures_in_a_row = 0
        scores = _label_scores(reply["choices"][0], prompt.verbalizers)
        if np.isnan(scores).all():
            with self._lock:
                self.stats.abstains["off_label"] += 1  # a real answer, cached: the same question gets it again
        return scores

    def score(self, texts: Sequence[str], prompt: Prompt) -> np.ndarray:
        """Scores per text; a text whose request kept failing abstains (NaN, counted by reason, not cached).
        Raises EndpointError once max_consecutive_failures rows in a row failed: the endpoint is down, not
        one row."""
        params = {"verbalizers": list(prompt.verbalizers), "temperature": self.temperature}
        keys = [cache_key(self.backend, self.model_id, self.revision, _instruction(prompt, t), params) for t in texts]
        self._failures_in_a_row, self._fatal = 0, None
        vectors = cached_compute(self.cache, keys, list(texts), lambda todo: self._ask_all(prompt, todo), self.stats,
                                 chunk_size=8 * self.max_concurrency)
        if self._fatal is not None:
            raise self._fatal
        return vectors if keys else np.zeros((0, len(prompt.verbalizers)), np.float32)

    def _ask_all(self, prompt: Prompt, texts: list[str]) -> list[np.ndarray | NoAnswer]:
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(lambda t: self._ask(prompt, t), texts))

    def measure_throughput(self, texts: Sequence[str], prompt: Prompt | None = None,
                           min_seconds: float | None = None) -> float:
        """Texts/s, uncached, from the first wave of max_concurrency requests up (min_seconds: the shortest
        prefix that takes about that long: an evaluation does not send a paid endpoint 256 requests)."""
        prompt = prompt or Prompt("{text}", ("yes", "no"))
        return fm_texts_per_s(lambda chunk: self._ask_all(prompt, chunk), texts, min_seconds, self.max_concurrency)
