"""The inbox: each input file that lands in a task's inbox folder is one partition of batch_predictions,
keyed by its file name; its output is <predictions>/<key>.<format>, whose footer says which model
version scored it. Pure functions over the file system, shared by the sensor, the schedule and the CLI."""

from __future__ import annotations

import re
import time
from pathlib import Path

from fmops_pipelines.inference.sources import FORMATS

# Dagster partition keys may not contain these (and a key is also a file name)
_BAD_KEY = re.compile(r"[,\[\]\n\r\t/\\]|\.\.\.")


def partition_key_problem(name: str) -> str | None:
    if name.startswith("."):
        return "hidden or temporary file"
    if Path(name).suffix.lower() not in FORMATS:
        return f"not an input format ({', '.join(sorted(FORMATS))})"
    if _BAD_KEY.search(name):
        return "name contains one of , [ ] ... or a tab/newline, which partition keys cannot hold"
    return None


def ready_files(inbox: Path, settle_seconds: float = 0.0, now: float | None = None) -> dict[str, Path]:
    """Files that are inputs and have not been modified for `settle_seconds` (writers should write
    elsewhere and rename into the inbox; the settle time covers copies that do not)."""
    if not inbox.is_dir():
        return {}
    now = time.time() if now is None else now
    return {p.name: p for p in sorted(inbox.iterdir())
            if p.is_file() and partition_key_problem(p.name) is None and now - p.stat().st_mtime >= settle_seconds}


def signature(path: Path) -> str:
    """Changes when the file is replaced or rewritten: a re-landed file is scored again."""
    stat = path.stat()
    return f"{stat.st_mtime_ns}-{stat.st_size}"


def scored_since_written(source: Path, output: Path) -> bool:
    """An output newer than its input: a backfill or `fmops batch` already scored this version of the file."""
    return output.is_file() and output.stat().st_mtime_ns >= source.stat().st_mtime_ns


def output_path(predictions: Path, key: str, fmt: str) -> Path:
    return predictions / f"{key}.{fmt}"


def scored_by(output: Path) -> str | None:
    """The model version in an output's footer (Parquet), or None if there is no readable output."""
    if not output.is_file() or output.suffix != ".parquet":
        return None
    from fmops_pipelines.inference.sinks import read_footer

    try:
        return read_footer(output).get("fmops.model_version")
    except OSError:
        return None


def needing_scores(keys: list[str], predictions: Path, fmt: str, champion: str | None) -> list[str]:
    """Partitions with no output, and with `champion` given, those scored by another version (a CSV output
    has no footer to tell, so every one of those counts)."""
    out = []
    for key in keys:
        path = output_path(predictions, key, fmt)
        if not path.is_file() or (champion is not None and scored_by(path) != champion):
            out.append(key)
    return out
