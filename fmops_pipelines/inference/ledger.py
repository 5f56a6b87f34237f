"""Batch inference cost per task, summed over the partitions scored so far (read from the Parquet footers
that each run writes, so no database is needed): rows, wall seconds, and what the FM would have taken."""

from __future__ import annotations

import json
from pathlib import Path

from fmops_pipelines.inference.sinks import read_footer


def task_costs(predictions: Path) -> dict:
    """{"partitions", "rows", "seconds", "rows_per_s", "fm_calls_equivalent", "fm_seconds_equivalent", "by_version"}."""
    totals = {"partitions": 0, "rows": 0, "seconds": 0.0, "fm_calls_equivalent": 0, "fm_seconds_equivalent": 0.0}
    by_version: dict[str, int] = {}
    for path in sorted(predictions.glob("*.parquet")) if predictions.is_dir() else []:
        try:
            footer = read_footer(path)
            rows, seconds = int(footer["fmops.rows"]), float(footer["fmops.seconds"])
        except (OSError, KeyError, ValueError):
            continue  # not one of ours, or written before footers held the figures
        fm_rate = json.loads(footer.get("fmops.fm_texts_per_s", "null"))
        totals["partitions"] += 1
        totals["rows"] += rows
        totals["seconds"] += seconds
        totals["fm_calls_equivalent"] += rows
        totals["fm_seconds_equivalent"] += rows / fm_rate if fm_rate else 0.0
        version = footer.get("fmops.model_version", "?")
        by_version[version] = by_version.get(version, 0) + rows
    totals["rows_per_s"] = round(totals["rows"] / totals["seconds"], 1) if totals["seconds"] else 0.0
    totals["seconds"], totals["fm_seconds_equivalent"] = (round(totals["seconds"], 2),
                                                          round(totals["fm_seconds_equivalent"], 1))
    return {**totals, "rows_by_model_version": by_version}
