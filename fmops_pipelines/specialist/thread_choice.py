"""Training steps on one thread or on all of them, whichever is faster right now, found by timing steps.

Torch splits each op of a training step across its intra-op threads, which then wait for one another. An n-gram
student's ops are tiny (a batch of 128 rows), so on a shared machine one descheduled thread stalls the team:
10,000 SST-2 phrases, char n-grams, four epochs, on 2 cores: alone 1.1 s on 2 threads and 1.6 s on 1; beside four
busy processes 14-20 s on 2 threads and 4.2 s on 1 (a throwaway script; benchmarks/student_threads.py times the
sms_spam student the same way, with this choice beside). The OpenMP wait policy fmops picks at import
(fmops_pipelines/__init__.py) cannot help a run whose neighbours start after it, and load averages lag, so the
choice is made where it pays: every EVERY steps, PROBE steps alternate between one thread and all of them, and the
faster on average runs the steps until the next probe: the mean, not the median, since what a busy machine costs a
team of threads is the odd step that waits a whole time slice; and all threads only where they were clearly
faster, since the two mistakes cost unequally.

Only for trainings whose results do not depend on the thread count: the n-gram students train to the same weights
bit for bit on 1 and 2 threads (tests/unit/test_thread_choice.py), so which count a step runs on changes only
its time. A larger model's matrix products may split their sums by thread count; those trainings keep torch's.
"""

from __future__ import annotations

import statistics
import time

import torch

PROBE = 12  # steps timed on each count per probe
MARGIN = 0.9  # all threads only where they were faster by a tenth: one thread loses at most that when the probe was
# wrong, while all threads on a busy machine lost 4-5x
EVERY = 240  # steps from one probe to the next (~0.5-1 s of an n-gram student's training alone)


class ThreadChoice:
    """Call `before_step()` and `after_step()` around each training step, `close()` at the end (it restores the
    process's thread count). Disabled (nothing is changed) where torch has one thread or `enabled` is False.
    While one thread keeps winning, probes come half as often each time (up to every 16 x EVERY steps): a probe's
    steps on all threads are what a busy machine still costs."""

    def __init__(self, enabled: bool = True, probe: int | None = None, every: int | None = None):
        self.most = torch.get_num_threads()
        self.enabled = enabled and self.most > 1
        self.probe = probe or PROBE
        self.every = max(every or EVERY, 2 * self.probe + 1)
        self.steps, self.next_probe, self.interval = 0, 0, self.every
        self.running = self.most
        self.times: dict[int, list[float]] = {1: [], self.most: []}
        self.choices: list[int] = []  # each probe's pick, for reports and tests
        self._started = 0.0

    def _probing(self) -> bool:
        return 0 <= self.steps - self.next_probe < 2 * self.probe

    def before_step(self) -> None:
        if not self.enabled:
            return
        if self._probing():
            self._use(1 if (self.steps - self.next_probe) % 2 else self.most)
        elif self.steps == self.next_probe + 2 * self.probe:
            one, most = (statistics.fmean(self.times[n]) for n in (1, self.most))
            chosen = self.most if most < one * MARGIN else 1
            self.choices.append(chosen)
            self.times = {1: [], self.most: []}
            self.interval = self.every if chosen == self.most else min(2 * self.interval, 16 * self.every)
            self.next_probe = self.steps + self.interval
            self._use(chosen)
        self._started = time.perf_counter()

    def after_step(self) -> None:
        if not self.enabled:
            return
        if self._probing():
            self.times[self.running].append(time.perf_counter() - self._started)
        self.steps += 1

    def close(self) -> None:
        if self.enabled:
            self._use(self.most)

    def _use(self, threads: int) -> None:
        if threads != self.running:
            torch.set_num_threads(threads)
            self.running = threads
