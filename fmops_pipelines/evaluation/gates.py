"""Gates: named metrics derived from the evaluation summary, compared with the spec's thresholds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from fmops_pipelines.spec import GateSpec

GATE_METRICS: dict[str, Callable[[dict], float]] = {
    "test_accuracy": lambda s: s["test"]["accuracy"],
    "test_macro_f1": lambda s: s["test"]["macro_f1"],
    "min_class_f1": lambda s: min(c["f1"] for c in s["test"]["per_class"].values()),
    "lift_over_best_prompt": lambda s: s["test"]["macro_f1"] - s["baselines"]["best_prompt"]["macro_f1"],
    "lift_over_label_model": lambda s: s["test"]["macro_f1"] - s["baselines"]["label_model"]["macro_f1"],
    "speedup_over_fm": lambda s: s["throughput"]["specialist_texts_per_s"] / s["throughput"]["fm_texts_per_s"],
}


def evaluate_gates(gates: "list[GateSpec]", summary: dict) -> list[dict]:
    """One verdict per gate, in spec order: name, value, threshold, passed."""
    verdicts = []
    for gate in gates:
        value = round(float(GATE_METRICS[gate.metric](summary)), 4)
        verdicts.append({"name": gate.check_name, "value": value, "threshold": gate.threshold,
                         "passed": bool(gate.passes(value))})
    return verdicts
