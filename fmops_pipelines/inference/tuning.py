"""Throughput autotuning: time the champion on a sample of the real input over the settings that matter on
this machine, keep the fastest, and remember it per (model version, machine) so it is measured once.

Space: batch size x worker processes for fork-safe CPU scorers (the n-gram model: featurising is
single-threaded Python, so processes are what scale); batch size x torch threads on CPU, batch size on
cuda (bf16 autocast) for torch scorers. Settings fixed in task.yaml narrow the space to themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from fmops_pipelines import paths
from fmops_pipelines.inference.engine import Predictor, can_fork_workers, rebatch
from fmops_pipelines.inference.scorers import Settings

SAMPLE_TEXTS = {"ngram": 24576, "encoder": 768}
DEFAULTS = {"ngram": Settings(4096), "encoder": Settings(64)}  # inputs smaller than a tuning sample use these
MIN_SECONDS = 0.3  # per candidate, after a warm-up pass


@dataclass(frozen=True)
class Overrides:
    """Settings a user fixed in task.yaml (None: tune it)."""

    batch_size: int | None = None
    workers: int | None = None
    threads: int | None = None


@dataclass
class Tuned:
    settings: Settings
    texts_per_s: float
    table: list[dict]  # every candidate with its measured texts/s
    how: str = "measured"  # "measured" now, "cached" from an earlier run, "pinned" in task.yaml, "defaults"


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_id(device: str) -> str:
    """What makes timings comparable: host, usable CPUs and the accelerator."""
    accelerator = ""
    if device.startswith("cuda"):
        import torch

        accelerator = torch.cuda.get_device_name(torch.device(device))
    raw = f"{platform.node()}|{platform.machine()}|{usable_cpus()}|{accelerator}"
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def candidates(architecture: str, fork_safe: bool, device: str, fixed: Overrides) -> list[Settings]:
    cpus = usable_cpus()
    if architecture == "ngram":
        batches, workers, threads = [1024, 4096, 16384], sorted({1, min(2, cpus), cpus}) if fork_safe and can_fork_workers() else [1], [None]
    elif device.startswith("cuda"):
        batches, workers, threads = [64, 128, 256, 512], [1], [None]
    else:
        batches, workers, threads = [16, 32, 64], [1], sorted({1, cpus})
    pick = lambda fixed_value, values: [fixed_value] if fixed_value else values
    return [Settings(b, w, t, device) for b in pick(fixed.batch_size, batches)
            for w in pick(fixed.workers, workers) for t in pick(fixed.threads, threads)]


def measure(scorer, settings: Settings, sample: pa.RecordBatch, text_column: str) -> float:
    """Texts/s of the real scoring path (worker processes included) over the sample, after a warm-up."""
    with Predictor(scorer, settings, text_column) as predictor:
        for _ in predictor.map(rebatch([sample.slice(0, settings.batch_size * settings.workers)],
                                       settings.batch_size)):
            pass
        rows, start = 0, time.perf_counter()
        while time.perf_counter() - start < MIN_SECONDS or rows == 0:
            for batch, _ in predictor.map(rebatch([sample], settings.batch_size)):
                rows += batch.num_rows
        return rows / (time.perf_counter() - start)


def tune(scorer, sample: pa.RecordBatch, text_column: str, device: str, fixed: Overrides | None = None) -> Tuned:
    fixed = fixed or Overrides()
    space = candidates(scorer.architecture, getattr(scorer, "fork_safe", False), device, fixed)
    table = []
    for settings in space:
        table.append({**settings.as_dict(), "texts_per_s": round(measure(scorer, settings, sample, text_column), 1)})
    best = max(range(len(space)), key=lambda i: table[i]["texts_per_s"])
    return Tuned(space[best], table[best]["texts_per_s"], table)


def cache_path(task: str, version: str, device: str, fixed: Overrides) -> Path:
    overrides = hashlib.sha256(json.dumps(fixed.__dict__, sort_keys=True).encode()).hexdigest()[:8]
    return paths.fmops_home() / "tuning" / task / f"v{version}-{machine_id(device)}-{overrides}.json"


def tuned_settings(task: str, version: str, scorer, sample: Callable[[], pa.RecordBatch | None], text_column: str,
                   device: str, fixed: Overrides | None = None) -> Tuned:
    """The cached choice for this model version on this machine, or a fresh measurement on `sample()`
    (then cached); defaults when `sample()` says the input is too small to tune on."""
    fixed = fixed or Overrides()
    if fixed.batch_size and fixed.workers and (fixed.threads or scorer.architecture == "ngram"):
        settings = Settings(fixed.batch_size, fixed.workers, fixed.threads, device)
        return Tuned(settings, 0.0, [{**settings.as_dict(), "texts_per_s": None}], how="pinned")
    path = cache_path(task, version, device, fixed)
    if path.is_file():
        raw = json.loads(path.read_text())
        return Tuned(Settings(**raw["settings"]), raw["texts_per_s"], raw["table"], how="cached")
    rows = sample()
    if rows is None:  # a small input: not worth tuning, and not what the cache should learn from
        base = DEFAULTS.get(scorer.architecture, DEFAULTS["encoder"])
        settings = Settings(fixed.batch_size or base.batch_size, fixed.workers or 1, fixed.threads, device)
        return Tuned(settings, 0.0, [{**settings.as_dict(), "texts_per_s": None}], how="defaults")
    result = tune(scorer, rows, text_column, device, fixed)
    paths.atomic_write_bytes(path, json.dumps({"settings": result.settings.as_dict(), "texts_per_s":
                                               result.texts_per_s, "table": result.table}, indent=2).encode())
    return result


def sample_of(source: Path, text_column: str, architecture: str) -> pa.RecordBatch | None:
    """The first rows of the real input as one batch, or None when the input is smaller than a sample."""
    from fmops_pipelines.inference.sources import read_batches

    want, taken, rows = SAMPLE_TEXTS.get(architecture, SAMPLE_TEXTS["encoder"]), [], 0
    for batch in read_batches(source, text_column):
        taken.append(batch.select([text_column]))
        rows += batch.num_rows
        if rows >= want:
            break
    if rows < want:
        return None
    return pa.Table.from_batches(taken).slice(0, want).combine_chunks().to_batches()[0]
