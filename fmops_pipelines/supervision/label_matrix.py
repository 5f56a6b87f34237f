"""The weak label matrix L[n, m]: one row per example, one column per labeler, -1 = abstain."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fmops_pipelines.fm.base import FoundationModel
from fmops_pipelines.fm.exploration import CalibratedPrompt
from fmops_pipelines.votes import ABSTAIN

META_COLUMNS = ["id", "split"]
GOLD_TEACHER = "gold_teacher"  # the gold teacher's column, beside the prompts' and rules'


def prompt_label_matrix(fm: FoundationModel, labelers: list[CalibratedPrompt], rows: pd.DataFrame) -> pd.DataFrame:
    """Votes of every calibrated prompt on every row the FM may label (all of them without fm.budget; see
    data.fm_budget), ABSTAIN on the rest, as an int8 column per prompt id.

    A few-shot labeler votes on dev as fitted without the row (as in exploration), so
    label-model selection and calibration on dev never see it grade its own examples.
    """
    from fmops_pipelines.data.fm_budget import asked

    mask = asked(rows)
    ask = rows[mask]
    texts = ask["text"].tolist()
    out = rows[META_COLUMNS].reset_index(drop=True).copy()
    for cal in labelers:
        scores = fm.score(texts, cal.prompt)
        if cal.prompt.examples:  # few-shot: dev rows are its shots, so they get out-of-fold scores
            from fmops_pipelines.fm.exploration import few_shot_dev_scores, few_shot_kind

            dev = (ask["split"] == "dev").to_numpy()
            names = list(cal.prompt.verbalizers)
            y_dev = ask.loc[dev, "label"].map({n: i for i, n in enumerate(names)}).to_numpy()
            scores[dev] = few_shot_dev_scores(fm, ask.loc[dev, "text"].tolist(), y_dev, names, few_shot_kind(cal.prompt))
        column = np.full(len(rows), ABSTAIN, dtype=np.int8)
        column[mask] = cal.votes(scores)
        out[cal.prompt.id] = column
    return out


def build_label_matrix(fm: FoundationModel, prompts: list[CalibratedPrompt], lfs: list, rows: pd.DataFrame,
                       label_names: list[str], mining=None) -> pd.DataFrame:
    """All sources in one matrix: prompt labelers (p_<hash>), the user's labeling functions (lf_<name>), then,
    with a `mining` config (mined_lfs.MiningConfig), the keyword rules mined from the prompts' own votes on a
    sample of train (lf_fm_<label>); with fm.budget, prompts vote on the FM's rows only, the rules on all. The mined candidates, kept or not, travel in attrs["fm_rules"]."""
    from fmops_pipelines.supervision.lfs import apply_lfs

    matrix = prompt_label_matrix(fm, prompts, rows)
    table = None
    if mining is not None and prompts:
        from fmops_pipelines.data.fm_budget import asked
        from fmops_pipelines.supervision.mined_lfs import labeling_functions, mine_from_votes

        mask = asked(rows)  # mined from the FM's votes where it voted; then applied to every row (they are cheap)
        rules, table = mine_from_votes(rows[mask].reset_index(drop=True),
                                       matrix.loc[mask, [c.prompt.id for c in prompts]].to_numpy(), label_names, mining)
        lfs = [*lfs, *labeling_functions(rules)]
    if lfs:
        matrix = pd.concat([matrix, apply_lfs(lfs, rows.reset_index(drop=True), label_names)], axis=1)
    if table is not None:
        matrix.attrs["fm_rules"] = table.to_dict("records")
    return matrix


def with_gold_teacher(matrix: pd.DataFrame, teacher_labels: pd.DataFrame, label_names: list[str],
                      fold: int | None = None) -> pd.DataFrame:
    """The matrix with the gold teacher as one more labeler: its most probable label on each row it labelled,
    ABSTAIN elsewhere (rows fm.budget keeps from the FM). Gold rows get the vote of the teacher fitted without
    their fold, so the label models scored, calibrated and stacked on gold never see it grade rows it learned (a
    gold row a review queue picked has no such vote: ABSTAIN); the pool and test get the teacher fitted on all
    gold, or with `fold` the pool gets the teacher fitted without that fold (test none): the votes a student
    scored on that fold may learn from (specialist.gold_rows). No teacher (gold too small): the matrix unchanged."""
    from fmops_pipelines.supervision.gold_teacher import FULL

    if teacher_labels is None or not len(teacher_labels):
        return matrix
    others = teacher_labels["fold"] == FULL if fold is None else (
        (teacher_labels["split"] == "train") & (teacher_labels["fold"] == fold))
    rows = teacher_labels[(teacher_labels["split"] == "dev") | others]
    vote = pd.Series(rows[[f"p_{n}" for n in label_names]].to_numpy().argmax(axis=1), index=rows["id"].to_numpy())
    out = matrix.copy()  # attrs (the mined rules' table) come along
    out[GOLD_TEACHER] = out["id"].map(vote).fillna(ABSTAIN).to_numpy(dtype=np.int8)
    return out


def anchor_columns(matrix: pd.DataFrame, prompt_anchors: Sequence[str]) -> list[str]:
    """The labelers that vote on every row they may: the anchor prompts (fm.exploration.anchor_ids) and the gold
    teacher. Rows only they label are left to specialist.distillation.choose_rows."""
    return [*prompt_anchors, *([GOLD_TEACHER] if GOLD_TEACHER in matrix.columns else [])]


def labeler_columns(matrix: pd.DataFrame) -> list[str]:
    return [c for c in matrix.columns if c not in META_COLUMNS]


def precise_columns(matrix: pd.DataFrame, anchors: Sequence[str] = ()) -> list[str]:
    """The labelers other than the anchors (which vote on every row); all of them if only anchors exist."""
    columns = labeler_columns(matrix)
    return [c for c in columns if c not in set(anchors)] or columns


def votes(matrix: pd.DataFrame, split: str | None = None) -> np.ndarray:
    part = matrix if split is None else matrix[matrix["split"] == split]
    return part[labeler_columns(matrix)].to_numpy(dtype=np.int64)


def votes_for(matrix: pd.DataFrame, ids: pd.Series) -> np.ndarray:
    """Votes of the given rows, in the order of `ids` (e.g. a split's gold rows)."""
    return votes(matrix.set_index("id").loc[ids].reset_index())


def matrix_summary(L: np.ndarray) -> dict[str, float]:
    """Coverage (rows with any vote), mean votes per row, and conflict rate (rows with disagreeing votes)."""
    voted = L != ABSTAIN
    covered = voted.any(axis=1)
    conflict = np.array([len(set(row[row != ABSTAIN])) > 1 for row in L]) if len(L) else np.array([])
    return {"rows": len(L), "labelers": int(L.shape[1]) if L.ndim == 2 else 0,
            "coverage": float(covered.mean()) if len(L) else 0.0,
            "votes_per_row": float(voted.sum(axis=1).mean()) if len(L) else 0.0,
            "conflict_rate": float(conflict.mean()) if len(L) else 0.0}
