"""fmops: foundation models for the first mile, distilled specialists for the last mile."""

import os

__version__ = "0.1.0"

# OpenMP threads that finish a parallel region sleep instead of spinning. On a machine shared with other
# work (concurrent runs, Celery workers) a spinning team waits for its descheduled member: training the
# n-gram student beside four busy processes on 2 cores took 34.9 s spinning vs 10.0 s passive, 2.3 vs 3.6 s
# alone (benchmarks/student_threads.py). Set here, before any step imports torch, so every process fmops
# starts (steps, workers, the UI) inherits it; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
