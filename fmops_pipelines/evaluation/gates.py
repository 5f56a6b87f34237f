"""Gates: named metrics over what evaluation measured, compared with the spec's thresholds.

Each metric reads the `measured` dict built by evaluation.evaluate: the summary blocks (test,
baselines, throughput, labeling) plus `details` (calibration, slices, label quality, champion).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from fmops_pipelines.evaluation.gold_only import best_macro_f1
from fmops_pipelines.spec import GATE_METRICS, GateSpec


def _worst_slice(m: dict, gate) -> float:
    buckets = [b for b in m["details"]["slices"] if b["slice"] == gate.slice and b["gated"]]
    return min((b["macro_f1"] for b in buckets), default=float("nan"))


def _regression(m: dict, gate) -> float:
    champion = m["details"]["champion"]
    return 0.0 if champion["macro_f1"] is None else m["test"]["macro_f1"] - champion["macro_f1"]


METRICS: dict[str, Callable[[dict, GateSpec], float]] = {
    # label quality
    "label_coverage": lambda m, g: m["details"]["label_coverage"],
    "label_model_dev_accuracy": lambda m, g: m["details"]["label_model_dev_accuracy"],
    # specialist quality on test
    "test_accuracy": lambda m, g: m["test"]["accuracy"],
    "test_macro_f1": lambda m, g: m["test"]["macro_f1"],
    "min_class_f1": lambda m, g: min(c["f1"] for c in m["test"]["per_class"].values()),
    "slice_macro_f1": _worst_slice,
    "lift_over_best_prompt": lambda m, g: m["test"]["macro_f1"] - m["baselines"]["best_prompt"]["macro_f1"],
    "lift_over_label_model": lambda m, g: m["test"]["macro_f1"] - m["baselines"]["label_model"]["macro_f1"],
    # weak supervision paid: the specialist against the best classifier trained on the gold rows alone
    "lift_over_gold_only": lambda m, g: m["test"]["macro_f1"] - best_macro_f1(m["baselines"].get("gold_only", [])),
    # calibration
    "ece": lambda m, g: m["details"]["ece"],
    # no regression: test macro-F1 minus the current champion's on the same split (0 without a champion)
    "regression_vs_champion": _regression,
    # throughput
    "specialist_texts_per_s": lambda m, g: m["throughput"]["specialist_texts_per_s"],
    "speedup_over_fm": lambda m, g: m["throughput"]["specialist_texts_per_s"] / m["throughput"]["fm_texts_per_s"],
}


assert set(METRICS) == set(GATE_METRICS), "every gate metric a spec may name is computed here"


def evaluate_gates(gates: list[GateSpec], measured: dict) -> list[dict]:
    """One verdict per gate, in spec order: name, value, threshold, passed (a NaN value fails)."""
    verdicts = []
    for gate in gates:
        value = round(float(METRICS[gate.metric](measured, gate)), 4)
        verdicts.append({"name": gate.check_name, "value": value, "threshold": gate.threshold,
                         "passed": bool(not math.isnan(value) and gate.passes(value))})
    return verdicts
