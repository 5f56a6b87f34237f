"""Giving the memory a finished step freed back to the operating system.

`fmops run` executes every step of a lifecycle in one process. glibc keeps what Python, torch and numpy free in
its heap for reuse instead of returning it, so each step started from the high-water mark of the steps before it:
the embedding FM loaded and run over 10,000 texts, then released, still held ~290 MB of a 993 MB process until
`malloc_trim` returned it (docs/specialists.md, "Where the memory goes"). Trimming after each step keeps the
process near what it actually holds; elsewhere than glibc (macOS, musl) there is nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache


@cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


FULL_COLLECTION_AFTER_S = 5.0  # a step at least this long gets a full collection: its cost under a tenth of the step


def give_back_freed_memory(full: bool = True) -> bool:
    """Collect unreachable objects (a model or frame in a reference cycle is not freed before), then return the
    heap's free pages to the OS. True where the C library could be asked. `full=False` collects only the young
    generations: with dagster, MLflow and torch imported a full collection walks ~430,000 objects, 0.2-0.5 s on
    this host, against ~0.02 s for the trim, too much after a step of a second, and a 10,000-row run's peak was
    130 MB lower with full collections after its long steps (docs/specialists.md)."""
    gc.collect(2 if full else 1)
    return trim_heap()


def trim_heap() -> bool:
    """Return the heap's free pages to the OS, no collection (~0.02 s): for loops that free as much as they keep,
    e.g. torch encoding a pool in chunks (each 1,024 short texts through MiniLM left ~130 MB of freed heap behind;
    a 67k-row pool's encoding left ~590 MB resident where 103 MB of vectors were kept)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
