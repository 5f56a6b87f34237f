"""The evaluation summary: the JSON contract that CI, the CLI and dashboards read (see DESIGN.md)."""

from __future__ import annotations

SUMMARY_KEYS = ("task", "model", "test", "baselines", "throughput", "labeling", "gates", "passed")
MEANINGFUL_LOSS = 0.01  # test macro-F1 below its teacher that the diagnosis (evaluation.teaching) calls a loss


def build_summary(task: str, model: dict, test: dict, baselines: dict, throughput: dict, labeling: dict,
                  gates: list[dict], teaching: dict | None = None) -> dict:
    """Assemble the summary; `passed` is true only when every gate passed. `teaching`: the teacher's and the
    student's test macro-F1 and the student's pool agreement (evaluation.teaching), where known."""
    summary = {
        "task": task,
        "model": {"name": model["name"], "version": str(model["version"]), "alias": model.get("alias")},
        "test": test,
        "baselines": baselines,
        "throughput": {**{k: round(float(throughput[k]), 1) for k in ("fm_texts_per_s", "specialist_texts_per_s")},
                       # the batch size and worker processes the specialist's figure was served with (additive)
                       **({"specialist_serving": throughput["specialist_serving"]}
                          if throughput.get("specialist_serving") else {})},
        "labeling": {k: int(labeling[k]) for k in ("fm_calls", "fm_cache_hits", "labelers")},
        "gates": gates,
        "passed": all(g["passed"] for g in gates),
    }
    assert tuple(summary) == SUMMARY_KEYS
    if teaching:
        summary["teaching"] = teaching
    return summary


def speedup(summary: dict) -> float:
    """Specialist over FM throughput as the speedup gate saw it (unrounded rates), else from the summary."""
    tp = summary["throughput"]
    return next((g["value"] for g in summary["gates"] if g["name"] == "speedup_over_fm"),
                tp["specialist_texts_per_s"] / max(tp["fm_texts_per_s"], 1e-9))


def served_as(throughput: dict) -> str:
    """', batch B x W worker(s) as batch inference serves it' where the specialist's figure was timed that way."""
    served = throughput.get("specialist_serving")
    return f", batch {served['batch_size']} x {served['workers']} worker(s) as batch inference serves it" if served else ""


GOLD_ONLY_NAMES = {"logreg_fm_embeddings": "logreg on FM embeddings", "tfidf_logreg": "TF-IDF + logreg",
                   "logreg_fm_embeddings_tfidf": "logreg on FM embeddings + TF-IDF",
                   "logreg_fm_embeddings_tokens_tfidf": "logreg on FM embeddings + token vectors + TF-IDF"}


def loss_line(summary: dict) -> str | None:
    """One line on where a specialist below its teacher lost (None when it is not below it)."""
    found = summary.get("teaching")
    if not found or found["loss"] <= MEANINGFUL_LOSS:
        return None
    agreement = found["student_pool_agreement"]
    return (f"below its teacher ({found['teacher']}: {found['teacher_test_macro_f1']:.3f} -> "
            f"{found['student_test_macro_f1']:.3f} test macro-F1"
            + (f", {agreement:.1%} agreement on the pool" if agreement is not None else "") + f"): {found['finding']}")


def gold_only_rows(baselines: dict) -> list[tuple[str, dict]]:
    """(name, metrics) of each classifier trained on the gold rows alone (none in summaries written before)."""
    return [(f"gold only: {GOLD_ONLY_NAMES.get(b['kind'], b['kind'])}", b) for b in baselines.get("gold_only", [])]


def label_model_rows(baselines: dict) -> list[tuple[str, dict]]:
    """(name, metrics) of the label model and, where another one's labels taught the specialist, its teacher;
    summaries written before label models carried their kind name none."""
    named = lambda title, m: f"{title} ({m['kind']})" if "kind" in m else title
    return [(named(title, baselines[key]), baselines[key]) for key, title in
            (("label_model", "label model"), ("teacher", "teacher"), ("gold_teacher", "gold teacher")) if key in baselines]
