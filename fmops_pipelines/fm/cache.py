"""Persistent FM response cache (SQLite): an unchanged prompt or text never costs a second FM call.

Keys hash everything that changes the answer: backend, model id and revision, input text, parameters.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmops_pipelines import progress
from fmops_pipelines.errors import EnvironmentProblem


def cache_key(backend: str, model_id: str, revision: str, text: str, params: dict | None = None) -> str:
    payload = json.dumps([backend, model_id, revision, text, params or {}], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def not_a_folder(path: Path) -> Path:
    """`path`, unless it is a folder: then one line that says so (SQLite would only say "unable to open database
    file", in every step that asks the FM)."""
    if path.is_dir():
        raise EnvironmentProblem(f"FM cache {path} is a directory: FMOPS_FM_CACHE names the SQLite file, "
                                 f"e.g. {path / 'fm_cache.sqlite'}")
    return path


class FMCache:
    """Vectors by key. Thread-safe enough for one process; SQLite WAL lets parallel steps read."""

    def __init__(self, path: Path):
        self.path = not_a_folder(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:  # e.g. a read-only file: one line, not SQLite's traceback
            raise EnvironmentProblem(f"FM cache {path} cannot be opened: {exc}") from exc

    def iter_many(self, keys: list[str]):
        """(key, vector) for each of `keys` the cache holds, 500 keys a query, as they are read: a caller that
        writes each where it belongs never holds the whole answer as separate arrays."""
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk):
                yield key, np.frombuffer(blob, dtype=np.float32)

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        return dict(self.iter_many(keys))

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", rows)

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class NoAnswer:
    """A row the FM could not answer (the endpoint kept failing): it abstains in this run and is not cached,
    so the next run asks again. `reason` is counted in FMStats.abstains unless it is "not_asked"."""

    reason: str
    width: int

    def scores(self) -> np.ndarray:
        return np.full(self.width, np.nan, dtype=np.float32)


def cached_compute(cache: FMCache | None, keys: Sequence[str], inputs: Sequence, compute: Callable[[list], Sequence],
                   stats, chunk_size: int | None = None) -> np.ndarray:
    """Values for keys, one float32 row each (all answers of one call have one width): cached ones are read; the
    rest are computed (a repeated key once) `chunk_size` at a time, each chunk stored as soon as it is answered, so
    a crash or a failing endpoint loses at most one chunk. Rows are written into the result as they are read or
    answered: a 67k-row pool's embeddings are held once (103 MB), where one array per row and their stacked copy
    held twice that. Counts FM calls, cache hits, FM seconds and unanswered rows on `stats` (an FMStats). No keys:
    a [0, 0] array."""
    rows_of: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        rows_of.setdefault(key, []).append(i)
    out: np.ndarray | None = None

    def put(key: str, value: np.ndarray) -> None:
        nonlocal out
        if out is None:
            out = np.empty((len(keys), len(value)), dtype=np.float32)
        out[rows_of[key]] = value

    seen = set()
    for key, value in cache.iter_many(list(rows_of)) if cache is not None else ():
        put(key, value)
        seen.add(key)
    missing = dict(sorted({k: x for k, x in zip(keys, inputs) if k not in seen}.items()))
    stats.cache_hits += len(keys) - len(missing)
    todo, step = list(missing.items()), chunk_size or max(len(missing), 1)
    tracker = progress.track("FM answers", len(todo), "texts")
    for start in range(0, len(todo), step):
        chunk = dict(todo[start : start + step])
        began = time.perf_counter()
        new = dict(zip(chunk, compute(list(chunk.values()))))
        stats.seconds += time.perf_counter() - began
        answered = {k: v for k, v in new.items() if not isinstance(v, NoAnswer)}
        stats.calls += len(answered)
        if cache is not None:  # an abstain (NaN) is cached too: the same question gets the same answer
            cache.put_many(answered)
        for k, v in new.items():
            if isinstance(v, NoAnswer):
                if v.reason != "not_asked":
                    stats.abstains[v.reason] += 1
                v = v.scores()
            put(k, v)
        tracker.advance(len(chunk))
    tracker.finish()
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
