"""Progress inside long steps (FM answers, training epochs, batch scoring): what is done, the rate and the ETA,
reported every few seconds to whoever listens, and nothing at all on a step that finishes sooner.

Core code calls `track(...)` and `advance(n)` without knowing who listens: a Dagster step sends the lines to its
run's log (the UI shows them; `fmops run` prints them as they arrive), `fmops predict` to stderr. No listener
(a library call, a test), no cost beyond a counter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TextIO

PREFIX = "progress: "  # how the CLI tells progress lines from the rest of a run's log
EVERY_S = 5.0
_listener: ContextVar[Callable[[str], None] | None] = ContextVar("fmops_progress", default=None)


@contextmanager
def reporting(emit: Callable[[str], None]) -> Iterator[None]:
    """Progress lines of the code inside this block go to `emit` (each starts with PREFIX)."""
    token = _listener.set(emit)
    try:
        yield
    finally:
        _listener.reset(token)


class Tracker:
    def __init__(self, what: str, total: int | None, unit: str, every_s: float = EVERY_S,
                 clock: Callable[[], float] = time.monotonic):
        self.what, self.total, self.unit, self.every_s, self.clock = what, total, unit, every_s, clock
        self.emit = _listener.get()
        self.done, self.reported = 0, False
        self.bounded = False  # total is an upper bound (early stopping): the ETA is one too
        self.start = self.last = clock()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.emit is None:
            return
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last, self.reported = now, True
            self.emit(PREFIX + self.line(now))

    def finish(self) -> None:
        """A last line, only where earlier ones were shown (a fast step stays silent)."""
        if self.reported and self.emit is not None:
            self.emit(PREFIX + self.line(self.clock(), final=True))

    def line(self, now: float, final: bool = False) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        of = f"/{self.total:,}" if self.total else ""
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        if final:
            tail = f" in {duration(elapsed)}"
        elif self.total and rate > 0:
            tail = f", ETA {'<= ' if self.bounded else ''}{duration((self.total - self.done) / rate)}"
        else:
            tail = ""
        return f"{self.what}: {self.done:,}{of} {self.unit}{share}, {rate:,.1f} {self.unit}/s{tail}"


def track(what: str, total: int | None = None, unit: str = "rows", every_s: float = EVERY_S) -> Tracker:
    return Tracker(what, total, unit, every_s)


def duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def terminal_printer(out: TextIO) -> Callable[[str], None]:
    """Progress lines for a person: rewritten in place on a terminal, one plain line each otherwise (CI logs)."""
    if not out.isatty():
        return lambda line: print(line, file=out, flush=True)

    def show(line: str) -> None:
        out.write(f"\r\033[K  {line.removeprefix(PREFIX)}")
        out.flush()

    return show


def clear_line(out: TextIO) -> None:
    """Before the next permanent line on a terminal: wipe a progress line left in place."""
    if out.isatty():
        out.write("\r\033[K")
