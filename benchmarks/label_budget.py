"""Label-budget curves: fmops against classifiers trained on the same gold rows alone, per number of gold rows.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/label_budget.py sms_spam youtube_spam \
        [--variants shipped prompts_only] [--gold 50 100 200 400 800] [--seeds 0 1 2] [--setfit] \
        [--set gold_teacher.labeler=false] [--csv docs/label_budget.csv] [--plot docs/label_budget.png]

Each (task, variant, budget, seed) is one whole `fmops run` (in this process, through Dagster) of the task's
shipped spec with `splits.dev_size` = the budget and `splits.gold_seed` = the seed: the same test split every
time, another draw of that many gold rows. Variants: `shipped` (as in assets/), `prompts_only` (its labeling
functions removed). Tasks may also be `wrench_sms` / `wrench_youtube`: the sms_spam / youtube_spam spec over
WRENCH's data with `split_column: split`, prompts only (WRENCH's test split; gold drawn from its train+valid).

Per run, on the held-out test split (macro-F1): the best prompt, the gold-only classifiers the evaluation
computes (TF-IDF + logistic regression, logistic regression on the FM's embeddings and on both), SetFit on the
same gold rows (`--setfit`, when the setfit package is installed: MiniLM body, 5 iterations; minutes per run on
2 cores), the gold teacher, the label model, the specialist (and, in the CSV, its expected calibration error
where the spec gates on it, as the shipped ones do), and the specialist's texts/s against the FM's. Runs share one FMOPS_HOME
(under /tmp unless FMOPS_HOME is set), so the FM answers each text once. The table prints the mean over seeds;
the CSV has every run, the PNG one panel per task and variant.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

WRENCH = {"wrench_sms": "sms_spam", "wrench_youtube": "youtube_spam"}
GOLD_ONLY = ["tfidf_logreg", "logreg_fm_embeddings", "logreg_fm_embeddings_tfidf", "logreg_fm_embeddings_tokens_tfidf",
             "setfit"]
COLUMNS = ["best_prompt", *GOLD_ONLY, "gold_teacher", "label_model", "specialist"]


def variant_spec(task: str, variant: str, budget: int, seed: int, overrides: dict | None = None) -> dict:
    """The task.yaml of one run, as a dict; `overrides`: dotted spec keys set on top (--set), to compare a
    setting's two sides over the same draws."""
    from fmops_pipelines.paths import assets_dir

    base = WRENCH.get(task, task)
    spec = yaml.safe_load((assets_dir() / base / "task.yaml").read_text())
    if task in WRENCH:
        spec["dataset"] = {"registry": task, "split_column": "split"}
        variant = "prompts_only"
    if variant == "prompts_only":
        spec.pop("labeling_functions", None)
        spec.pop("labeling_functions_module", None)
        spec["gates"] = [g for g in spec.get("gates", []) if not str(g.get("metric", "")).startswith("slice")]
        spec.pop("slices", None)
    spec["splits"] = {**spec.get("splits", {}), "dev_size": budget, "gold_seed": seed}
    spec["gates"] = [g for g in spec.get("gates", []) if g.get("metric") != "regression_vs_champion"]
    for dotted, value in (overrides or {}).items():
        *parents, leaf = dotted.split(".")
        node = spec
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return spec


def parse_overrides(items: list[str]) -> dict:
    """--set a.b=value ...: each value read as YAML (false, 3, [1, 2])."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            sys.exit(f"--set {item}: expected KEY=VALUE, e.g. gold_teacher.labeler=false")
        out[key] = yaml.safe_load(value)
    return out


def setfit_score(gold: pd.DataFrame, test: pd.DataFrame, label_names: list[str], seed: int) -> float | None:
    """SetFit (MiniLM body, 5 iterations) on the gold rows, test macro-F1; None where setfit is not installed.
    The same fit the contrastive gold teacher makes per fold (supervision.gold_teacher.Contrastive)."""
    import importlib.util

    if importlib.util.find_spec("setfit") is None:
        return None
    from sklearn.metrics import f1_score

    from fmops_pipelines.fm.local_models import resolve_model_path
    from fmops_pipelines.supervision.gold_teacher import Contrastive

    texts = [*gold["text"], *test["text"]]
    fitted = Contrastive(str(resolve_model_path("all-MiniLM-L6-v2")), 5, seed, texts).fitted(
        np.arange(len(gold)), gold["label"].map(label_names.index).to_numpy())
    classes, probs = fitted(np.arange(len(gold), len(texts)))
    y = test["label"].map(label_names.index).to_numpy()
    return float(f1_score(y, classes[probs.argmax(axis=1)], average="macro"))


def one_run(task: str, variant: str, budget: int, seed: int, assets: Path, use_setfit: bool,
            overrides: dict | None = None) -> dict:
    from fmops_pipelines.data.splits import part
    from fmops_pipelines.launcher import run_job, stored
    from fmops_pipelines.spec import get_spec

    name = f"lb_{task}_{variant}_g{budget}_s{seed}"
    (assets / name).mkdir(parents=True, exist_ok=True)
    (assets / name / "task.yaml").write_text(yaml.safe_dump(variant_spec(task, variant, budget, seed, overrides)))
    spec = get_spec(name)
    start = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        outcome = run_job(spec, f"{name}_lifecycle", out=quiet)
    seconds = time.perf_counter() - start
    summary = stored(name, "evaluation")
    if summary is None:
        return {"task": task, "variant": variant, "gold": budget, "seed": seed, "error": outcome.exit_code}
    base, splits = summary["baselines"], stored(name, "splits")
    gold_only = {b["kind"]: b["macro_f1"] for b in base.get("gold_only", [])}
    row = {"task": task, "variant": variant, "gold": budget, "seed": seed,
           "gold_rows": int((splits["split"] == "dev").sum()), "best_prompt": base["best_prompt"]["macro_f1"],
           **gold_only, "gold_teacher": base.get("gold_teacher", {}).get("macro_f1"),
           "label_model": base["label_model"]["macro_f1"], "specialist": summary["test"]["macro_f1"],
           "specialist_ece": next((g["value"] for g in summary["gates"] if g["name"] == "ece"), None),
           "specialist_texts_per_s": summary["throughput"]["specialist_texts_per_s"],
           "fm_texts_per_s": summary["throughput"]["fm_texts_per_s"], "run_seconds": round(seconds, 1),
           "taught_by": (stored(name, "specialist") or {}).get("taught_by")}
    if use_setfit:
        row["setfit"] = setfit_score(part(splits, "dev"), part(splits, "test"), spec.label_names, seed)
    return row


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = frame.groupby(["task", "variant"])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, ((task, variant), part_) in zip(axes[0], panels):
        means = part_.groupby("gold")[[c for c in COLUMNS if c in part_]].mean(numeric_only=True)
        for column in means:
            if means[column].notna().any():
                ax.plot(means.index, means[column], marker="o", label=column,
                        linewidth=2.5 if column == "specialist" else 1.2)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(list(means.index), [str(i) for i in means.index])
        ax.set_title(f"{task} ({variant})", fontsize=9)
        ax.set_xlabel("gold rows")
        ax.set_ylabel("test macro-F1")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--variants", nargs="+", default=["shipped"], choices=["shipped", "prompts_only"])
    parser.add_argument("--gold", nargs="+", type=int, default=[50, 100, 200, 400, 800])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--setfit", action="store_true")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="spec keys set on every run, e.g. gold_teacher.labeler=false")
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    overrides = parse_overrides(args.set)

    home = os.environ.setdefault("FMOPS_HOME", tempfile.mkdtemp(prefix="fmops-label-budget-"))
    assets = Path(tempfile.mkdtemp(prefix="fmops-label-budget-assets-"))
    for task in args.tasks:  # the shipped specs are read from here; the variants are written beside them
        base = WRENCH.get(task, task)
        if not (Path("assets") / base / "task.yaml").exists():
            sys.exit(f"{task}: no assets/{base}/task.yaml (run from the repository root)")
        (assets / base).mkdir(exist_ok=True)
        for f in (Path("assets") / base).iterdir():
            (assets / base / f.name).write_bytes(f.read_bytes())
    os.environ["FMOPS_ASSETS_DIR"] = str(assets)
    from fmops_pipelines.launcher import prepare_environment, quiet_libraries

    prepare_environment()
    quiet_libraries()
    print(f"FMOPS_HOME={home}", flush=True)
    rows = []
    for task in args.tasks:
        for variant in (["prompts_only"] if task in WRENCH else args.variants):
            for budget in args.gold:
                for seed in args.seeds:
                    row = one_run(task, variant, budget, seed, assets, args.setfit, overrides)
                    rows.append(row)
                    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                          flush=True)
                    if args.csv:
                        args.csv.parent.mkdir(parents=True, exist_ok=True)
                        pd.DataFrame(rows).to_csv(args.csv, index=False)
    frame = pd.DataFrame(rows)
    shown = [c for c in ["gold_rows", *COLUMNS] if c in frame and frame[c].notna().any()]
    table = frame.groupby(["task", "variant", "gold"])[shown].mean(numeric_only=True)
    table["best_gold_only"] = table[[c for c in GOLD_ONLY if c in table]].max(axis=1)
    table["specialist_minus_best_gold_only"] = table["specialist"] - table["best_gold_only"]
    table["speedup_over_fm"] = (frame.groupby(["task", "variant", "gold"])["specialist_texts_per_s"].mean()
                                / frame.groupby(["task", "variant", "gold"])["fm_texts_per_s"].mean())
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(f"\nmean over seeds {args.seeds}:\n{table}")
    if args.plot:
        plot(frame, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
