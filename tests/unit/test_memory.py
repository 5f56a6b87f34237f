import ctypes.util

import psutil
import pytest

from fmops_pipelines.memory import give_back_freed_memory
from fmops_pipelines.stages.conventions import with_progress

pytestmark = pytest.mark.skipif("libc.so" not in str(ctypes.util.find_library("c")),
                                reason="malloc_trim is glibc's: this C library keeps its own heap")


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _allocate_and_free(mb: int, pins: list) -> float:
    """Allocate `mb` MB in chunks small enough to come from the heap (not mmap) and one more that stays (in `pins`,
    above them: glibc cannot just shrink the heap's top), free the rest; the RSS at its peak. Freed memory under
    live objects is what a step leaves behind: a model freed while its outputs and Python's objects live on."""
    chunks = [bytearray(64 * 1024) for _ in range(mb * 16)]
    pins.append(bytearray(64 * 1024))
    peak = _rss_mb()
    del chunks
    return peak


def test_freed_heap_memory_goes_back_to_the_os():
    give_back_freed_memory()
    before, pins = _rss_mb(), []
    peak = _allocate_and_free(200, pins)
    assert peak - before > 150 and _rss_mb() - before > 150  # freed, and still held by the process
    assert give_back_freed_memory()
    assert _rss_mb() - before < 50


def test_a_step_gives_back_what_it_freed_before_the_next_starts():
    """Every task asset's body is wrapped so: an in-process run's next step starts from what is still held."""
    give_back_freed_memory()
    before, pins = _rss_mb(), []
    peak = with_progress(lambda context=None: _allocate_and_free(200, pins))()
    assert peak - before > 150 and _rss_mb() - before < 50
