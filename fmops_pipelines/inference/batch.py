"""One call for the whole last mile of one input file: the champion bundle, the tuned settings, the
streamed scoring with lineage, cost against the FM and drift against the champion's reference.
Used by the Dagster partition asset (`score_partition`) and by `fmops predict` (`predict_file`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fmops_pipelines import paths
from fmops_pipelines.errors import StateError
from fmops_pipelines.inference.bundle import Bundle, load_bundle
from fmops_pipelines.inference.drift import assess_drift
from fmops_pipelines.inference.engine import ScoreStats, not_the_input, score_file
from fmops_pipelines.inference.inbox import output_path
from fmops_pipelines.inference.lineage import Lineage
from fmops_pipelines.inference.tuning import Overrides, Tuned, sample_of, tuned_settings
from fmops_pipelines.spec import DriftSpec, TaskSpec


@dataclass
class BatchResult:
    bundle: Bundle
    tuned: Tuned
    stats: ScoreStats
    source: Path
    output: Path
    cost: dict
    drift: dict

    def summary(self) -> dict:
        """What a scored partition reports (asset metadata, mirrored to MLflow): plain values and dicts."""
        info, cost = self.bundle.info, self.cost
        return {"rows": self.stats.rows, "path": str(self.output), "source": str(self.source),
                "model_version": self.bundle.version, "label_model": info["label_model"],
                "texts_per_s": cost["rows_per_s"], "wall_seconds": cost["seconds"],
                "fm_seconds_equivalent": cost["fm_seconds_equivalent"] or 0.0,
                "fm_calls_equivalent": cost["fm_calls_equivalent"], "speedup_vs_fm": cost["speedup_vs_fm"] or 0.0,
                "tuned_texts_per_s": self.tuned.texts_per_s, "tuning": self.tuned.how,
                "settings": self.tuned.settings.as_dict(), "tuning_candidates": self.tuned.table,
                "label_counts": dict(zip(info["labels"], self.stats.class_counts.tolist(), strict=True)),
                "drift_detected": self.drift["drifted"], "drift": self.drift}


def fm_equivalent(rows: int, seconds: float, fm_texts_per_s: float | None) -> dict:
    """What the same rows would have cost through the FM: one call per row with its best prompt, at the
    FM's rate measured in evaluation (the cheapest way the FM could have labelled them)."""
    cost = {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / max(seconds, 1e-9), 1),
            "fm_calls_equivalent": rows, "fm_seconds_equivalent": None, "speedup_vs_fm": None}
    if fm_texts_per_s:
        cost["fm_seconds_equivalent"] = round(rows / fm_texts_per_s, 1)
        cost["speedup_vs_fm"] = round(cost["fm_seconds_equivalent"] / max(seconds, 1e-9), 1)
    return cost


def resolve_device(device: str, architecture: str) -> str:
    """'auto' -> cuda for a torch champion when present; the n-gram champion always runs on CPU (numpy)."""
    if architecture == "ngram":
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StateError(f"device '{device}' requested but torch sees no CUDA device on this machine")
    return device


def predict_file(task: str, source: Path, target: Path, *, text_column: str = "text", partition: str = "",
                 run_id: str = "", fixed: Overrides | None = None, device: str = "auto",
                 drift: DriftSpec | None = None, version: str | None = None) -> BatchResult:
    fixed, drift = fixed or Overrides(), drift or DriftSpec()
    not_the_input(source, target)  # before the model loads and tunes
    bundle = load_bundle(task, version)
    info = bundle.info
    device = resolve_device(device, info["architecture"])
    scorer = bundle.scorer(device)
    tuned = tuned_settings(task, bundle.version, scorer, lambda: sample_of(source, text_column, info["architecture"]),
                           text_column, device, fixed)
    lineage = Lineage(info["model"], bundle.version, info["label_model"], info["labelers_fingerprint"], partition,
                      run_id)
    stats = score_file(scorer, source, target, lineage, tuned.settings, text_column, footer={
        "fmops.source": str(source), "fmops.fm_texts_per_s": json.dumps(info.get("fm_texts_per_s"))})
    return BatchResult(bundle, tuned, stats, source, target, fm_equivalent(stats.rows, stats.seconds, info["fm_texts_per_s"]),
                       assess_drift(stats.profile(), info.get("reference"), drift.max_psi,
                                    drift.max_confidence_drop, drift.min_rows))


def score_partition(spec: TaskSpec, partition: str, run_id: str, device: str) -> BatchResult:
    """One inbox file (partition key = its name) into its output under FMOPS_HOME/predictions, with the
    spec's inference settings."""
    inference = spec.inference
    source = spec.inbox() / partition
    if not source.is_file():
        raise StateError(f"{spec.name}: partition '{partition}': its input {source} is no longer in the inbox")
    target = output_path(paths.predictions_dir(spec.name), partition, inference.output_format)
    return predict_file(spec.name, source, target, text_column=inference.text_column, partition=partition,
                        run_id=run_id, device=device, drift=inference.drift,
                        fixed=Overrides(inference.batch_size, inference.workers, inference.threads))
