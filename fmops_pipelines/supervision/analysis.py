"""LF analysis in the field's vocabulary (Snorkel's LFAnalysis): polarity, coverage, overlaps, conflicts,
empirical accuracy on dev, and the weight the label model learned for each labeler.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd

from fmops_pipelines.votes import ABSTAIN


def labeler_kind(column: str) -> str:
    """prompt (p_*), fm_rule (rules mined from the FM's labels, lf_fm_*) or rule (the user's, lf_*)."""
    if column.startswith("lf_fm_"):
        return "fm_rule"
    return "rule" if column.startswith("lf_") else "prompt"


def labeler_summary(L_train: np.ndarray, L_dev: np.ndarray, y_dev: np.ndarray, labelers: list[str],
                    label_names: list[str], weights: np.ndarray | None) -> pd.DataFrame:
    """One row per labeler: train coverage/overlaps/conflicts, dev coverage and accuracy, learned weight."""
    from snorkel.labeling import LFAnalysis

    with warnings.catch_warnings():  # snorkel's conflict count hands scipy.sparse.diags int64s: a FutureWarning
        warnings.filterwarnings("ignore", category=FutureWarning, module="scipy.sparse")  # in every evaluation log
        train = LFAnalysis(L_train).lf_summary()
    dev_cov = (L_dev != ABSTAIN).mean(axis=0) if len(L_dev) else np.zeros(len(labelers))
    correct = ((L_dev == y_dev[:, None]) & (L_dev != ABSTAIN)).sum(axis=0)
    voted = (L_dev != ABSTAIN).sum(axis=0)
    return pd.DataFrame({
        "labeler": labelers,
        "kind": [labeler_kind(name) for name in labelers],
        "polarity": [",".join(label_names[int(c)] for c in pol) for pol in train["Polarity"]],
        "coverage": train["Coverage"].to_numpy(),
        "overlaps": train["Overlaps"].to_numpy(),
        "conflicts": train["Conflicts"].to_numpy(),
        "dev_coverage": dev_cov,
        "dev_accuracy": np.where(voted > 0, correct / np.maximum(voted, 1), np.nan),
        "weight": weights if weights is not None else np.ones(len(labelers)),
    })


def coverage_accuracy_plot(summary: pd.DataFrame) -> bytes:
    """PNG: each labeler's train coverage vs dev accuracy, sized by learned weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    colors = {"prompt": "tab:blue", "rule": "tab:orange", "fm_rule": "tab:green"}
    for kind, part in summary.groupby("kind"):
        ax.scatter(part["coverage"], part["dev_accuracy"], s=40 + 200 * part["weight"].clip(0, 1),
                   alpha=0.7, label=kind, color=colors.get(kind, "tab:gray"))
    for _, row in summary.iterrows():
        ax.annotate(row["labeler"].removeprefix("lf_")[:14], (row["coverage"], row["dev_accuracy"]), fontsize=7)
    ax.set_xlabel("coverage (train)")
    ax.set_ylabel("empirical accuracy (dev)")
    ax.set_title("labelers: coverage vs accuracy (size = learned weight)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def summarize_labelers(matrix: pd.DataFrame, splits: pd.DataFrame, label_model, label_names: list[str]) -> pd.DataFrame:
    """labeler_summary over a stored label matrix and splits, with the fitted label model's weights."""
    from fmops_pipelines.data.splits import label_indices, part
    from fmops_pipelines.supervision.label_matrix import labeler_columns, votes, votes_for

    dev = part(splits, "dev")
    L_dev = votes_for(matrix, dev["id"])
    return labeler_summary(votes(matrix, "train"), L_dev, label_indices(dev["label"], label_names),
                           labeler_columns(matrix), label_names, label_model.labeler_weights())
