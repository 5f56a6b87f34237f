"""Streamed scoring: input batches -> champion probabilities -> output batches with labels, probabilities
and lineage, written atomically; memory holds a few batches whatever the input size.

With `workers` > 1 (fork-safe scorers only) batches are scored by forked processes that share the
loaded model; results come back in input order, with at most 2 batches per worker in flight.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Self

import numpy as np
import pyarrow as pa

from fmops_pipelines import progress
from fmops_pipelines.errors import DataError, StateError
from fmops_pipelines.inference.drift import PredictionProfile
from fmops_pipelines.inference.lineage import Lineage
from fmops_pipelines.inference.scorers import Settings
from fmops_pipelines.inference.sinks import AtomicTableWriter
from fmops_pipelines.inference.sources import read_batches

_WORKER_SCORER = None  # set in the parent before forking; each worker inherits it


def _score_in_worker(texts: list[str]) -> np.ndarray:
    return _WORKER_SCORER.predict_proba(texts)


def can_fork_workers() -> bool:
    """A daemonic process (a Celery prefork worker's child, a multiprocessing pool member) may not start
    processes of its own: there, batches are scored in the process itself and the worker count comes from
    how many Celery workers run."""
    return not multiprocessing.current_process().daemon


class Predictor:
    """`map(batches)` yields (batch, probabilities) in order, in this process or in forked workers."""

    def __init__(self, scorer, settings: Settings, text_column: str):
        self.scorer, self.settings, self.text_column = scorer, settings, text_column
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Self:
        self.scorer.configure(self.settings)
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _texts(self, batch: pa.RecordBatch) -> list[str]:
        return batch.column(self.text_column).to_pylist()

    def _start_pool(self) -> ProcessPoolExecutor:
        global _WORKER_SCORER
        _WORKER_SCORER = self.scorer  # forked workers inherit the loaded model
        self.pool = ProcessPoolExecutor(self.settings.workers, mp_context=multiprocessing.get_context("fork"))
        return self.pool

    def map(self, batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
        batches = iter(batches)
        head = list(islice(batches, 2))
        parallel = self.settings.workers > 1 and getattr(self.scorer, "fork_safe", False) and can_fork_workers()
        if len(head) < 2 or not parallel:  # a single batch: forking workers would cost more than it saves
            for batch in chain(head, batches):
                yield batch, self.scorer.predict_proba(self._texts(batch))
            return
        pool = self.pool or self._start_pool()
        pending: deque = deque()
        try:
            for batch in chain(head, batches):
                pending.append((batch, pool.submit(_score_in_worker, self._texts(batch))))
                if len(pending) >= 2 * self.settings.workers:
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        except BrokenProcessPool:
            raise StateError("a scoring worker process died (killed, or out of memory?); no output was written: "
                             "run again, or with fewer workers") from None


def rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly `rows` rows (the last may be shorter): the readers' blocks are sized in bytes,
    the model's batches in texts."""
    parts, count = [], 0
    for batch in batches:
        start = 0
        while start < batch.num_rows:
            take = min(rows - count, batch.num_rows - start)
            parts.append(batch.slice(start, take))
            count, start = count + take, start + take
            if count == rows:
                yield _joined(parts)
                parts, count = [], 0
    if parts:
        yield _joined(parts)


def _joined(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    return parts[0] if len(parts) == 1 else pa.Table.from_batches(parts).combine_chunks().to_batches()[0]


def prediction_columns(batch: pa.RecordBatch, probs: np.ndarray, labels: list[str]) -> dict[str, pa.Array]:
    """`label` (dictionary-encoded) and one float32 `p_<label>` per class; a name the input already uses
    gets a `predicted_` prefix instead of replacing the user's column."""
    taken = set(batch.schema.names)
    label = pa.DictionaryArray.from_arrays(pa.array(probs.argmax(axis=1).astype(np.int32)), pa.array(labels))
    columns = {"label": label, **{f"p_{name}": pa.array(probs[:, i]) for i, name in enumerate(labels)}}
    return {(f"predicted_{k}" if k in taken else k): v for k, v in columns.items()}


@dataclass
class ScoreStats:
    """What the partition's metadata, cost accounting and drift check need; filled as batches pass."""

    labels: list[str]
    seconds: float = 0.0
    predicted: PredictionProfile = field(init=False)

    def __post_init__(self) -> None:
        self.predicted = PredictionProfile(len(self.labels))

    @property
    def rows(self) -> int:
        return self.predicted.rows

    @property
    def class_counts(self) -> np.ndarray:
        return self.predicted.class_counts

    @property
    def rows_per_s(self) -> float:
        return self.rows / max(self.seconds, 1e-9)

    def add(self, probs: np.ndarray) -> None:
        self.predicted.add(probs)

    def profile(self) -> dict:
        return self.predicted.as_dict()


def not_the_input(source: Path, target: Path) -> None:
    """A DataError where the output path is the input file: the atomic write would replace the input, whole."""
    if Path(source).resolve() == Path(target).resolve():
        raise DataError(f"{target}: the output is the input file; choose another output path (predictions never "
                        f"overwrite their input)")


def score_file(scorer, source: Path, target: Path, lineage: Lineage, settings: Settings, text_column: str = "text",
               footer: dict[str, str] | None = None) -> ScoreStats:
    """Score `source` into `target` (format by extension) with lineage columns; nothing at `target` changes
    unless every row was scored. The Parquet footer gets the lineage, `footer` and the run's figures."""
    not_the_input(source, target)
    start = time.perf_counter()
    stats = ScoreStats(scorer.labels)
    tracker = progress.track(f"scoring {source.name}", None, "rows")
    with AtomicTableWriter(target, {**lineage.footer(), **(footer or {})}) as writer, \
            Predictor(scorer, settings, text_column) as predictor:
        for batch, probs in predictor.map(rebatch(read_batches(source, text_column), settings.batch_size)):
            stats.add(probs)
            columns = {**dict(zip(batch.schema.names, batch.columns, strict=True)),
                       **prediction_columns(batch, probs, scorer.labels), **lineage.columns(batch.num_rows)}
            writer.write(pa.RecordBatch.from_pydict(columns))
            tracker.advance(batch.num_rows)
        tracker.finish()
        stats.seconds = time.perf_counter() - start
        writer.metadata.update({"fmops.rows": str(stats.rows), "fmops.seconds": f"{stats.seconds:.3f}",
                                "fmops.settings": json.dumps(settings.as_dict())})
    return stats
