"""The FM budget: which unlabelled rows the foundation model labels this run (`fm.budget`).

Without a budget the FM labels every row of the pool, so its cost grows with the pool (an embedding FM: one
encoding per row; a generative one: one call per prompt per row). With one, it labels at most `budget` rows in
all: gold and test first (every prompt is calibrated, chosen and scored on them), and with what is left a sample
of the pool chosen to cover it; the rest of the pool gets only the cheap labelers (the user's labeling functions
and the keyword rules mined from the FM's own votes on the sample), and the student's self-training carries the
labels to what is still uncovered. FM calls then stay flat as the pool grows (Evaporate's point: FM cost fixed
with respect to the data), and the budget is a ceiling a user can price: gold rows added by review rounds come out
of the pool's share, not on top of it.

Coverage sample: the pool's texts as hashed word n-grams (TF-IDF weighted, no vocabulary to hold), reduced by
truncated SVD and clustered by mini-batch k-means; each cluster gets a share of the budget proportional to its
size (largest remainder, at least one row per cluster while the budget lasts), drawn at random inside it. So a
rare kind of text in the pool is asked about in proportion, not missed by chance, and the whole step costs
seconds on tens of thousands of rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fmops_pipelines.errors import SpecError

FM_SAMPLE = "fm_sample"  # the splits column: True where the FM labels the row
MAX_CLUSTERS = 64
SVD_DIMS = 32
MIN_POOL_SAMPLE = 100  # pool rows the budget must leave after gold and test: calibration and the votes need some


def coverage_sample(texts: Sequence[str], budget: int, seed: int = 0) -> np.ndarray:
    """A boolean mask over `texts` with min(budget, len(texts)) True rows, stratified by clusters of the texts."""
    n = len(texts)
    if budget >= n:
        return np.ones(n, dtype=bool)
    clusters = _clusters(texts, min(MAX_CLUSTERS, max(1, budget // 20)), seed)
    quota = _quota(np.bincount(clusters), budget)
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, dtype=bool)
    for c, q in enumerate(quota):
        members = np.flatnonzero(clusters == c)
        mask[rng.choice(members, size=q, replace=False)] = True
    return mask


def _clusters(texts: Sequence[str], k: int, seed: int) -> np.ndarray:
    """Cluster ids of cheap dense features: hashed word 1-2 grams, TF-IDF, SVD, mini-batch k-means."""
    if k <= 1:
        return np.zeros(len(texts), dtype=np.int64)
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.preprocessing import normalize

    X = HashingVectorizer(ngram_range=(1, 2), n_features=2 ** 18, alternate_sign=False, norm=None).transform(texts)
    X = X[:, np.flatnonzero(X.getnnz(axis=0) >= 2)]  # n-grams shared by 2+ texts: the SVD then costs 30x less
    if X.shape[1] < 2:
        return np.zeros(len(texts), dtype=np.int64)
    X = TfidfTransformer(sublinear_tf=True).fit_transform(X)
    dims = min(SVD_DIMS, X.shape[1] - 1, max(1, len(texts) - 1))
    Z = normalize(TruncatedSVD(dims, random_state=seed).fit_transform(X))
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048)
    return km.fit_predict(Z.astype(np.float32)).astype(np.int64)


def _quota(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Rows per cluster: proportional to its size by largest remainder, each non-empty cluster at least one
    (while the budget lasts), never more than it holds."""
    sizes = np.asarray(sizes, dtype=np.int64)
    quota = np.minimum(sizes, (sizes > 0).astype(np.int64))
    if quota.sum() >= budget:  # fewer rows than clusters: the largest clusters get one each
        out = np.zeros_like(sizes)
        out[np.argsort(-sizes, kind="stable")[:budget]] = 1
        return out
    while quota.sum() < budget:
        room = sizes - quota
        share = (budget - quota.sum()) * room / room.sum()
        add = np.minimum(np.floor(share).astype(np.int64), room)
        if add.sum() == 0:  # the remainders: one more row to the clusters with the largest shares
            add = np.zeros_like(sizes)
            add[np.argsort(-(share - np.floor(share)), kind="stable")[:budget - quota.sum()]] = 1
            add = np.minimum(add, room)
        quota += add
    return quota


def with_fm_sample(splits: pd.DataFrame, budget: int | None, seed: int = 0) -> pd.DataFrame:
    """The splits with an `fm_sample` column when the spec sets fm.budget: gold and test always True, and a
    coverage sample of the pool with the rest of the budget, so at most `budget` rows are True; unchanged without a
    budget, where the FM labels every row. A budget that gold and test leave under MIN_POOL_SAMPLE pool rows is
    refused (SpecError), since the prompts would then vote on no unlabelled row."""
    if budget is None:
        return splits
    pool = (splits["split"] == "train").to_numpy()
    fixed = int((~pool).sum())
    room = budget - fixed
    if room < min(MIN_POOL_SAMPLE, int(pool.sum())):
        raise SpecError(f"fm.budget {budget:,}: the FM labels the {fixed:,} gold and test rows first, which leaves "
                        f"{max(room, 0):,} pool rows (at least {MIN_POOL_SAMPLE} are needed); raise it to "
                        f"{fixed + MIN_POOL_SAMPLE:,} or more, or lower splits.dev_size / test_fraction")
    mask = np.ones(len(splits), dtype=bool)
    mask[pool] = coverage_sample(splits.loc[pool, "text"].tolist(), room, seed)
    return splits.assign(**{FM_SAMPLE: mask})


def asked(splits: pd.DataFrame) -> np.ndarray:
    """A boolean mask over the splits' rows: the ones the FM labels (all of them without a budget)."""
    if FM_SAMPLE not in splits.columns:
        return np.ones(len(splits), dtype=bool)
    return splits[FM_SAMPLE].to_numpy(dtype=bool)


def fm_rows(splits: pd.DataFrame) -> pd.DataFrame:
    """The rows the FM may label: every row without a budget, else gold, test and the pool's coverage sample."""
    return splits if FM_SAMPLE not in splits.columns else splits[asked(splits)]
