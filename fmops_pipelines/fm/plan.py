"""`fmops plan TASK`: what a run will ask of the FM, before anything runs, with and without fm.budget.

Counted from the task's real splits (the same function the splits asset calls) and the spec's prompt settings,
uncached (a warm cache answers some of these for free). Per backend:

- embedding: one encoding per distinct text the FM sees (every prompt compares against the same embedding; the
  gold teacher, the evaluation and the review queue reuse them): gold, test and the pool rows it labels.
- generative (hf-generative, openai): one call per prompt per text. Exploration scores every candidate prompt on
  gold and a calibration sample of the pool; the labelers (at most prompts.max_labelers) then vote on the rest
  of the rows the FM labels. An upper bound: fewer labelers may be kept.

FM time comes from a timed probe on a few of the task's own texts (uncached calls to the real model or
endpoint); the cost, for a spec that prices its endpoint (fm.usd_per_million_tokens), from the rendered
prompts' characters at ~4 per token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

CHARS_PER_TOKEN = 4.0  # a rough English average for BPE tokenizers; the cost is an estimate and says so
PROBE_TEXTS = 48


@dataclass
class Plan:
    budget: int | None
    rows: int  # every row of the task
    fm_rows: int  # rows the FM labels
    fm_calls: int  # uncached FM calls (encodings, or prompt x text)
    fm_seconds: float | None  # at the probe's rate
    usd: float | None  # priced endpoints only

    def as_dict(self) -> dict:
        return asdict(self)


def fm_calls(spec, splits: pd.DataFrame, candidates: int, calibration_pool: int) -> tuple[int, int, int]:
    """(rows the FM labels, its uncached calls, characters sent) for these splits (with or without an fm_sample
    column). `candidates`: exploration's candidate prompts; `calibration_pool`: pool rows exploration calibrates on."""
    from fmops_pipelines.data.fm_budget import fm_rows

    rows = fm_rows(splits)
    texts = rows["text"].drop_duplicates()
    chars = int(texts.str.len().sum())
    if spec.fm.backend == "embedding":
        return len(rows), len(texts), chars
    dev = int((rows["split"] == "dev").sum())
    pool = min(calibration_pool, int((rows["split"] == "train").sum()))
    labelers = min(spec.prompts.max_labelers, candidates)
    explored = candidates * (dev + pool)
    voted = labelers * max(0, len(texts) - dev - pool)
    mean_chars = chars / max(1, len(texts)) + float(np.mean([len(t) for t in spec.prompts.templates]))
    return len(rows), explored + voted, int((explored + voted) * mean_chars)


def plans(spec, splits_without: pd.DataFrame, splits_with: pd.DataFrame | None, texts_per_s: float | None,
          candidates: int, calibration_pool: int, budget: int | None) -> list[Plan]:
    """The plan without a budget, and with `budget` where one is given."""
    price = spec.fm.usd_per_million_tokens
    out = []
    for b, splits in ((None, splits_without), (budget, splits_with)):
        if splits is None:
            continue
        n, calls, chars = fm_calls(spec, splits, candidates, calibration_pool)
        out.append(Plan(b, len(splits), n, calls, round(calls / texts_per_s, 1) if texts_per_s else None,
                        round(chars / CHARS_PER_TOKEN * price / 1e6, 2) if price is not None else None))
    return out


def probe_rate(fm, texts: list[str], min_seconds: float = 3.0) -> float:
    """FM calls per second on a few of the task's texts (uncached: the real model or endpoint is asked)."""
    return float(fm.measure_throughput(texts[:PROBE_TEXTS], min_seconds=min_seconds))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def render(task: str, backend: str, rate: float | None, items: list[Plan]) -> str:
    lines = [f"{task}: FM {backend}, probe {rate:,.0f} calls/s (uncached)" if rate else f"{task}: FM {backend}",
             f"{'':<22}{'rows':>9}{'FM rows':>10}{'FM calls':>11}{'FM time':>10}{'cost USD':>10}"]
    for p in items:
        name = "without a budget" if p.budget is None else f"fm.budget {p.budget:,}"
        cost = "-" if p.usd is None else f"{p.usd:,.2f}"
        lines.append(f"{name:<22}{p.rows:>9,}{p.fm_rows:>10,}{p.fm_calls:>11,}{duration(p.fm_seconds):>10}{cost:>10}")
    return "\n".join(lines)
