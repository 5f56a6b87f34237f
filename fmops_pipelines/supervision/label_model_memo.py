"""Fitted label models, kept so that the same fit is not run twice.

A warm re-run's label_model step refitted every candidate on the very same votes: with 'auto', Snorkel's
LabelModel builds a torch optimiser, whose first construction in a process imports torch._dynamo (2-3 s),
then trains for its epochs; about 5 of the step's 6 seconds on sms_spam. The fit is a function of its inputs
(votes, dev labels, class balance, settings) and of the code that fits, so `fit_candidates_memoised` keys
the result by a fingerprint of all of them, the source of the modules that compute it and the versions of
the libraries it calls included: an edited label model or an upgraded Snorkel fits again.

FMOPS_TRAINING_MEMO=0 turns this off with the students' memo (a label model is trained too).
"""

from __future__ import annotations

import hashlib
import importlib
import pickle
from importlib import metadata
from pathlib import Path

import numpy as np

FORMAT = 1
KEEP = 8  # memos kept per folder (the most recently used): one per recent set of votes, a few KB to a few MB each
# The modules whose code decides fit_candidates' result (fitting, calibration, the choice within noise).
_SOURCES = ("fmops_pipelines.supervision.label_models", "fmops_pipelines.probability", "fmops_pipelines.noisy_choice",
            "fmops_pipelines.votes")
_LIBRARIES = ("numpy", "scikit-learn", "snorkel", "torch")


def _array(digest, a: np.ndarray) -> None:
    a = np.ascontiguousarray(a)
    digest.update(f"{a.dtype.str}{a.shape}".encode())
    digest.update(a.tobytes())


def _code_digest() -> str:
    digest = hashlib.sha256(f"format {FORMAT}".encode())
    for name in _SOURCES:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    for lib in _LIBRARIES:
        try:
            digest.update(f"{lib} {metadata.version(lib)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{lib} absent".encode())
    return digest.hexdigest()


def fingerprint(kind: str, L_train: np.ndarray, L_dev: np.ndarray, y_dev: np.ndarray, k: int,
                class_balance: np.ndarray, epochs: int, seed: int) -> str:
    """Everything fit_candidates' result depends on: inputs, settings, the code and library versions."""
    digest = hashlib.sha256(_code_digest().encode())
    digest.update(f"{kind}|{k}|{epochs}|{seed}".encode())
    for a in (L_train, L_dev, y_dev, np.asarray(class_balance, dtype=np.float64)):
        _array(digest, a)
    return digest.hexdigest()[:32]


def fit_candidates_memoised(memo_dir: Path | None, kind: str, L_train: np.ndarray, L_dev: np.ndarray,
                            y_dev: np.ndarray, k: int, class_balance: np.ndarray, epochs: int = 500, seed: int = 0):
    """(fit_candidates' result, whether it came from the memo). Without `memo_dir` (or with memos off) it fits.
    A memo that cannot be read is treated as absent; a new one is written atomically, so a crash mid-write
    leaves no half memo, and only the KEEP most recently used are kept."""
    from fmops_pipelines.paths import atomic_write_bytes, memos_enabled
    from fmops_pipelines.supervision.label_models import fit_candidates

    args = (kind, L_train, L_dev, y_dev, k, class_balance, epochs, seed)
    if memo_dir is None or not memos_enabled():
        return fit_candidates(*args), False
    path = memo_dir / f"label-models-{fingerprint(*args)}.memo"
    candidates = _load(path)
    if candidates is not None:
        path.touch()  # kept as recently used: pruning removes the least recently used
        return candidates, True
    candidates = fit_candidates(*args)
    atomic_write_bytes(path, pickle.dumps(candidates, protocol=pickle.HIGHEST_PROTOCOL))
    _prune(memo_dir)
    return candidates, False


def _prune(memo_dir: Path) -> None:
    """Remove all but the KEEP most recently used memos; another run pruning at the same time is harmless."""
    def last_used(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    for old in sorted(memo_dir.glob("label-models-*.memo"), key=last_used, reverse=True)[KEEP:]:
        old.unlink(missing_ok=True)


def _load(path: Path):
    """The memo's candidates, or None where there is none or it cannot be read (then it is fitted again)."""
    try:
        with path.open("rb") as f:
            return pickle.load(f)
    except Exception:  # noqa: BLE001 - missing, or unreadable (e.g. a foreign or damaged file): fit and overwrite
        return None
