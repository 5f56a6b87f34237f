"""fmops: foundation models for the first mile, distilled specialists for the last mile."""

import os

__version__ = "0.1.0"


SPIN_COUNT = "1000000"  # libgomp spins before a thread sleeps under ACTIVE: ~30 ms on this 2-core host


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


def _bounded_spinning() -> None:
    """Under ACTIVE, spin SPIN_COUNT times before sleeping (GOMP_SPINCOUNT, unless the user set it).

    libgomp's own count under ACTIVE is 30 billion spins (minutes), so a process that used torch and then waits
    (a Celery worker between tasks, a parent waiting on its child) kept a core busy for nothing: 3.0 of 3 idle
    seconds here, and a benchmark's parent that had timed the FM once slowed every run it then waited on.
    Bounded, it burns 0.02 s of them, and training, whose parallel regions follow each other within
    microseconds, still spins: the sms_spam student alone on 2 threads 2.6 s, 2.8 s unbounded, 4.1 s PASSIVE
    (benchmarks/student_threads.py). PASSIVE gets no count: one would make it spin.
    """
    if os.environ.get("GOMP_SPINCOUNT") and os.environ.get("FMOPS_GOMP_SPINCOUNT") != "auto":
        return
    if os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "ACTIVE":
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
        os.environ["FMOPS_GOMP_SPINCOUNT"] = "auto"  # fmops's, not the user's: children decide again
    else:
        os.environ.pop("GOMP_SPINCOUNT", None)
        os.environ.pop("FMOPS_GOMP_SPINCOUNT", None)


_openmp_wait_policy()
_bounded_spinning()
