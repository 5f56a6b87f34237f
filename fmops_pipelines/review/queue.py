"""Which rows a person should label next, and which gold labels look wrong.

New labels: query by committee with diversity (Cluster-Margin, Citovsky et al. 2021, with a committee). The
committee is the specialist, the label model and the gold teacher; a row's priority is 1 minus the margin between
the top two classes of their mean probabilities, which is high both where they are unsure and where they disagree.
The `candidates` x budget most uncertain rows are clustered (k-means, `budget` clusters) on the FM's embeddings
(hashed n-grams reduced by SVD for FMs without embeddings, or where fm.budget kept some candidates from the FM),
and each cluster gives its most uncertain row: a round of fifty near-duplicates teaches what one of them would.

Gold labels that look wrong: cleanlab's `find_label_issues` over the gold teacher's out-of-fold probabilities
(no gold row is judged by a model that saw its label), ranked by self-confidence.

Test rows are never queued: only the pool (split train) and gold (split dev) are candidates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LABEL, RECHECK = "label", "recheck"
COLUMNS = ["id", "text", "kind", "priority", "reason", "prediction", "confidence", "current_label"]


def committee_priority(members: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(priority, disagree) per row: 1 - margin of the members' mean probabilities (members with NaN rows, e.g.
    the label model where no labeler voted, sit those rows out), and whether their top classes differ."""
    stack = np.stack(list(members.values()))  # [m, n, k]
    consensus = np.nanmean(stack, axis=0)
    top2 = np.sort(consensus, axis=1)[:, -2:]
    votes = np.where(np.isnan(stack).any(axis=2), -1, stack.argmax(axis=2))  # [m, n]
    disagree = np.array([len(set(col[col >= 0])) > 1 for col in votes.T])
    return 1.0 - (top2[:, 1] - top2[:, 0]), disagree


def diverse_top(priority: np.ndarray, features, budget: int, candidates: int, seed: int) -> np.ndarray:
    """Indices of `budget` rows: the most uncertain `candidates * budget`, clustered into `budget` groups, each
    group's most uncertain row (ordered by priority). `features`: every row's, or a function of row indices that
    gives those rows' (so only the candidates are encoded: under fm.budget the FM never saw most of the pool)."""
    from sklearn.cluster import KMeans

    order = np.argsort(-priority, kind="stable")
    pool = order[: max(budget, budget * candidates)]
    if len(pool) <= budget:
        return pool
    X = features(pool) if callable(features) else features[pool]
    clusters = KMeans(n_clusters=budget, n_init=3, random_state=seed).fit_predict(X)
    best = {}
    for i, c in zip(pool, clusters):  # pool is sorted by priority: the first row seen per cluster is its best
        best.setdefault(int(c), i)
    chosen = np.array(list(best.values()))
    return chosen[np.argsort(-priority[chosen], kind="stable")]


def text_features(texts: list[str], seed: int, dims: int = 64) -> np.ndarray:
    """Cheap dense features for diversity where the FM gives no embeddings: hashed word n-grams, SVD-reduced."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import HashingVectorizer

    hashed = HashingVectorizer(ngram_range=(1, 2), n_features=2 ** 18, alternate_sign=False).transform(texts)
    # only the columns these texts use: the SVD's random projection is as wide as its input, and over all 2**18
    # hashed columns it held ~450 MB and took ~4 s for a round's 500 candidates (a 67k-row run's peak RSS)
    hashed = hashed[:, np.unique(hashed.indices)]
    if hashed.shape[1] < 2:
        return np.zeros((hashed.shape[0], 1))
    svd = TruncatedSVD(n_components=min(dims, max(1, hashed.shape[0] - 1), hashed.shape[1] - 1), random_state=seed)
    return svd.fit_transform(hashed)


def diversity_features(fm, texts: list[str], fm_may_see: np.ndarray, seed: int):
    """rows -> the features the queue clusters those candidate rows on: the FM's embeddings where it has them and
    fm.budget let it see every one of those rows (`fm_may_see`), else text_features: the queue never makes the
    FM encode a row its budget left out (`fmops plan` counts none)."""
    def features(rows: np.ndarray) -> np.ndarray:
        chosen = [texts[i] for i in rows]
        if hasattr(fm, "embed") and fm_may_see[rows].all():
            return fm.embed(chosen)
        return text_features(chosen, seed)
    return features


def _describe(label_names: list[str], members: dict[str, np.ndarray], i: int, disagree: bool, margin: float) -> str:
    said = [f"{name} {label_names[int(np.argmax(p[i]))]} {np.max(p[i]):.2f}" for name, p in members.items()
            if not np.isnan(p[i]).any()]
    return f"{'committee disagrees' if disagree else 'committee unsure'} (margin {margin:.2f}): {'; '.join(said)}"


def new_label_rows(pool: pd.DataFrame, members: dict[str, np.ndarray], features, label_names: list[str],
                   budget: int, candidates: int, seed: int = 0) -> pd.DataFrame:
    """The pool rows to label next (`members` must hold a "specialist" entry: its prediction pre-annotates)."""
    if budget <= 0 or pool.empty:
        return pd.DataFrame(columns=COLUMNS)
    priority, disagree = committee_priority(members)
    chosen = diverse_top(priority, features, budget, candidates, seed)
    spec = members["specialist"]
    return pd.DataFrame({
        "id": pool["id"].to_numpy()[chosen].astype(str), "text": pool["text"].to_numpy()[chosen], "kind": LABEL,
        "priority": priority[chosen].round(4),
        "reason": [_describe(label_names, members, i, disagree[i], 1 - priority[i]) for i in chosen],
        "prediction": [label_names[j] for j in spec[chosen].argmax(axis=1)],
        "confidence": spec[chosen].max(axis=1).round(4), "current_label": None})


def recheck_rows(gold: pd.DataFrame, oof: np.ndarray, label_names: list[str], limit: int) -> pd.DataFrame:
    """Gold rows (id, text, label) whose label cleanlab flags against out-of-fold probabilities, most suspect first."""
    if limit <= 0 or gold.empty:
        return pd.DataFrame(columns=COLUMNS)
    from cleanlab.filter import find_label_issues

    index = {n: i for i, n in enumerate(label_names)}
    y = gold["label"].map(index).to_numpy(dtype=np.int64)
    if np.bincount(y, minlength=len(label_names)).min() < 1:
        return pd.DataFrame(columns=COLUMNS)  # cleanlab needs every class among the given labels
    # n_jobs=1: its default process pool deadlocks when forked from a process whose torch threads are running
    flagged = find_label_issues(labels=y, pred_probs=oof, return_indices_ranked_by="self_confidence", n_jobs=1)[:limit]
    return pd.DataFrame({
        "id": gold["id"].to_numpy()[flagged].astype(str), "text": gold["text"].to_numpy()[flagged], "kind": RECHECK,
        "priority": (1 - oof[flagged, y[flagged]]).round(4),
        "reason": [f"gold label '{label_names[y[i]]}' looks wrong: out of fold P({label_names[y[i]]}) "
                   f"{oof[i, y[i]]:.2f}, P({label_names[int(oof[i].argmax())]}) {oof[i].max():.2f} (cleanlab)"
                   for i in flagged],
        "prediction": [label_names[int(oof[i].argmax())] for i in flagged],
        "confidence": oof[flagged].max(axis=1).round(4), "current_label": [label_names[y[i]] for i in flagged]})


def review_queue(new: pd.DataFrame, rechecks: pd.DataFrame) -> pd.DataFrame:
    frames = [f for f in (new, rechecks) if len(f)]
    return pd.concat(frames, ignore_index=True)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)


def build_queue(model, fm, splits: pd.DataFrame, training_labels: pd.DataFrame, label_model_kind: str,
                gold_teacher: pd.DataFrame, label_names: list[str], budget: int, rechecks: int, candidates: int,
                exclude: set[str] = frozenset(), seed: int = 0) -> pd.DataFrame:
    """One round's queue from a lifecycle run's outputs: `model` (the specialist) scores the pool; the label model
    `label_model_kind` and the gold teacher join its committee; `exclude`: rows a person already answered or
    still has in an open round."""
    from fmops_pipelines.data.fm_budget import asked
    from fmops_pipelines.supervision.gold_teacher import gold_oof, pool_labels
    from fmops_pipelines.supervision.label_models import labels_of, prob_columns

    cols = prob_columns(label_names)
    pool = splits[(splits["split"] == "train") & ~splits["id"].astype(str).isin(exclude)].reset_index(drop=True)
    members = {"specialist": model.predict_proba(pool["text"].tolist())}
    for name, frame in (("label model", _covered(labels_of(training_labels, label_model_kind))),
                        ("gold teacher", pool_labels(gold_teacher) if len(gold_teacher) else None)):
        if frame is not None and len(frame):
            members[name] = frame.set_index(frame["id"].astype(str))[cols].reindex(pool["id"].astype(str)).to_numpy()
    features = diversity_features(fm, pool["text"].tolist(), asked(pool), seed)
    new = new_label_rows(pool, members, features, label_names, budget, candidates, seed)
    gold = splits[(splits["split"] == "dev") & ~splits["id"].astype(str).isin(exclude)]
    oof = gold_oof(gold_teacher) if len(gold_teacher) else None
    if oof is None or oof.empty or (oof["fold"] < 0).all():
        return review_queue(new, pd.DataFrame(columns=COLUMNS))
    oof = oof.set_index(oof["id"].astype(str)).reindex(gold["id"].astype(str))
    known = oof[cols].notna().all(axis=1).to_numpy()
    return review_queue(new, recheck_rows(gold[known].reset_index(drop=True), oof[cols].to_numpy()[known],
                                          label_names, rechecks))


def _covered(frame: pd.DataFrame) -> pd.DataFrame:
    """The label model's rows where some labeler voted (elsewhere it only repeats the class prior)."""
    return frame[frame["covered"]] if "covered" in frame.columns else frame
