"""The evaluation report: one self-contained HTML file (inline CSS and PNGs) that people read.

Sections: verdict and gates, headline metrics beside the baselines, confusion matrix, reliability
diagram, per-slice table, labeler summary, prompt table.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

from fmops_pipelines.display import num
from fmops_pipelines.evaluation.summary import gold_only_rows, label_model_rows, loss_line, served_as, speedup

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0} th,td{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th{background:#f5f5f5} td:first-child,th:first-child{text-align:left}
.pass{color:#11772d;font-weight:600} .fail{color:#b3261e;font-weight:600}
.verdict{display:inline-block;padding:.3rem .8rem;border-radius:4px;color:#fff;font-weight:600}
.verdict.pass{background:#11772d;color:#fff} .verdict.fail{background:#b3261e;color:#fff}
.plots{display:flex;gap:2rem;flex-wrap:wrap} .muted{color:#666;font-size:.85rem}
"""


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def confusion_png(confusion: list[list[int]], labels: list[str]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(labels), 1.0 + 0.8 * len(labels)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title("confusion matrix (test)")
    return _png(fig)


def reliability_png(bins: list[dict], ece: float) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    if bins:
        conf = [b["confidence"] for b in bins]
        acc = [b["accuracy"] for b in bins]
        ax.bar([(b["lo"] + b["hi"]) / 2 for b in bins], acc, width=[b["hi"] - b["lo"] for b in bins],
               alpha=0.35, edgecolor="tab:blue", label="accuracy per bin")
        ax.plot(conf, acc, "o-", color="tab:blue", label="mean confidence vs accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (test), ECE = {ece:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda x: f"{x:.3f}", border=0, na_rep="", escape=True)


def _abstained(abstains: dict | None) -> str:
    """", N rows got no usable FM answer (reason n, ...)" or nothing."""
    if not abstains:
        return ""
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in abstains.items())
    return f", {sum(abstains.values()):,} FM requests got no usable answer and abstained ({html.escape(reasons)})"


def _batch_section(costs: dict | None) -> str:
    if not costs or not costs["partitions"]:
        return ""
    fm = costs["fm_seconds_equivalent"]
    saved = f", {fm / max(costs['seconds'], 1e-9):,.0f}x less time than the FM" if fm else ""
    return (f"<h2>Batch inference so far</h2><p>{costs['partitions']} partitions, {costs['rows']:,} rows in "
            f"{costs['seconds']:,.1f} s ({costs['rows_per_s']:,.0f} rows/s). Through the FM: {costs['fm_calls_equivalent']:,} "
            f"calls, about {fm:,.0f} s{saved}. Rows by model version: "
            f"{html.escape(', '.join(f'v{v}: {n:,}' for v, n in costs['rows_by_model_version'].items()))}.</p>")


def render_report(summary: dict, details: dict, prompt_table: pd.DataFrame, labeler_table: pd.DataFrame,
                  plots: dict[str, bytes] | None = None) -> str:
    """The whole report as one HTML string; `plots` may pass pre-rendered PNGs to avoid drawing twice."""
    plots = plots or report_plots(details)
    passed = summary["passed"]
    model = summary["model"]
    gates = pd.DataFrame(summary["gates"]) if summary["gates"] else pd.DataFrame(columns=["name", "value", "threshold", "passed"])
    gate_rows = "".join(
        f"<tr><td>{html.escape(g['name'])}</td><td>{num(g['value'])}</td><td>{num(g['threshold'])}</td>"
        f"<td class=\"{'pass' if g['passed'] else 'fail'}\">{'passed' if g['passed'] else 'FAILED'}</td></tr>"
        for g in gates.to_dict("records"))
    base, test, tp, lab = summary["baselines"], summary["test"], summary["throughput"], summary["labeling"]
    headline = pd.DataFrame([
        {"model": "best single prompt", **base["best_prompt"]},
        {"model": "majority vote", **base["majority_vote"]},
        *({"model": name, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]} for name, m in label_model_rows(base)),
        *({"model": f"{name} ({m['gold_rows']} rows)", "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
          for name, m in gold_only_rows(base)),
        {"model": f"specialist v{model['version']}", "accuracy": test["accuracy"], "macro_f1": test["macro_f1"]},
    ])
    per_class = pd.DataFrame([{"class": c, **m} for c, m in test["per_class"].items()])
    slices = pd.DataFrame(details["slices"]) if details["slices"] else pd.DataFrame({"slice": ["(none declared)"]})
    champion = details["champion"]
    champ = (f"current champion v{champion['version']}: test macro-F1 {champion['macro_f1']:.3f}"
             if champion["macro_f1"] is not None else "no champion to compare with")
    prompts = prompt_table[[c for c in ("rank", "prompt_id", "template", "verbalizers", "dev_accuracy", "dev_macro_f1",
                                        "coverage", "covered_accuracy", "selected") if c in prompt_table.columns]]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fmops evaluation: {html.escape(summary['task'])} v{model['version']}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(summary['task'])}: {html.escape(model['name'])} v{model['version']}</h1>
<p><span class="verdict {'pass' if passed else 'fail'}">{'all gates passed' if passed else 'gates FAILED: not promoted'}</span>
&nbsp; held-out test split, n = {test['n']} &middot; {html.escape(champ)}</p>
<h2>Gates</h2>
<table><tr><th>gate</th><th>value</th><th>threshold</th><th>verdict</th></tr>{gate_rows}</table>
<h2>Specialist vs its teachers (test)</h2>
{_table(headline)}
{_teaching(summary)}
<p>Throughput: FM {num(tp['fm_texts_per_s'])} texts/s, specialist {num(tp['specialist_texts_per_s'])} texts/s
({num(speedup(summary))}x{served_as(tp)}). Labeling: {lab['labelers']} labelers,
{lab['fm_calls']:,} FM calls (new answers), {lab['fm_cache_hits']:,} requests answered by the FM cache{_abstained(details.get('fm_abstains'))}. Label coverage (train) {details['label_coverage']:.3f},
label-model dev accuracy {details['label_model_dev_accuracy']:.3f}.</p>
{_table(per_class)}
<div class="plots">{_img(plots['confusion'], 'confusion matrix')}{_img(plots['reliability'], 'reliability diagram')}</div>
{_batch_section(details.get("batch_inference"))}
<h2>Slices (test)</h2>
{_table(slices)}
<p class="muted">Buckets with fewer rows than the slice's min_rows are shown but not gated.</p>
<h2>Labelers</h2>
{_table(labeler_table)}
<h2>Prompts (scored on dev)</h2>
{_table(prompts)}
</body></html>
"""


def _teaching(summary: dict) -> str:
    """The teacher, the student's fit to its labels on the pool, and (when it lost) where the loss happened."""
    found = summary.get("teaching")
    if not found:
        return ""
    agreement = found["student_pool_agreement"]
    line = loss_line(summary) or found["finding"].removeprefix("the student is ")
    return (f"<p>Taught by the {html.escape(found['teacher'])}: test macro-F1 {found['teacher_test_macro_f1']:.3f}; "
            f"the specialist agrees with its labels on {'-' if agreement is None else f'{agreement:.1%}'} of the "
            f"unlabelled pool and scores {found['student_test_macro_f1']:.3f}: {html.escape(line)}.</p>")


def write_report(path, summary: dict, details: dict, prompt_table: pd.DataFrame,
                 labeler_table: pd.DataFrame) -> dict[str, bytes]:
    """Render the report and write it atomically to `path`; returns its plots for the asset page."""
    from fmops_pipelines.paths import atomic_write_bytes

    plots = report_plots(details)
    atomic_write_bytes(path, render_report(summary, details, prompt_table, labeler_table, plots).encode())
    return plots


def report_plots(details: dict) -> dict[str, bytes]:
    return {"confusion": confusion_png(details["confusion"], details["labels"]),
            "reliability": reliability_png(details["reliability"], details["ece"])}
