"""fmops: foundation models for the first mile, distilled specialists for the last mile."""

import os

__version__ = "0.1.0"


def _openmp_wait_policy() -> None:
    """Spin (ACTIVE) on an idle machine, sleep (PASSIVE) on a loaded one, decided per process before torch loads.

    A spinning OpenMP team waits for a descheduled member: the n-gram student beside four busy processes on
    2 cores trained in 27-35 s spinning vs 10-12 s passive, but alone in 2.3-4.0 s spinning vs 3.6-4.9 s passive
    (benchmarks/student_threads.py). Every process fmops starts (Dagster steps, Celery workers, the UI) imports
    this package first, so each step chooses by the load when it starts: the 1-minute average, or the tasks
    runnable right now besides this one (the average lags a minute behind work that just started). A value the
    user set is kept.
    """
    if os.environ.get("OMP_WAIT_POLICY") and os.environ.get("FMOPS_OMP_WAIT_POLICY") != "auto":
        return
    try:
        with open("/proc/loadavg") as f:
            runnable_now = int(f.read().split()[3].split("/")[0]) - 1
    except (OSError, ValueError, IndexError):  # not Linux: the average alone
        runnable_now = 0
    loaded = max(os.getloadavg()[0], runnable_now) > (os.cpu_count() or 1)
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE" if loaded else "ACTIVE"
    os.environ["FMOPS_OMP_WAIT_POLICY"] = "auto"  # children decide again by their own load


_openmp_wait_policy()
