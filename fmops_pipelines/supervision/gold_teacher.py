"""The gold teacher: a supervised classifier fitted on the gold rows, beside the weak labelers.

Measured on ~200 gold rows, a logistic regression on the FM's sentence embeddings matched or beat the label model
on two of three shipped tasks (test macro-F1 0.928 / 0.909 / 0.819 against 0.789 / 0.931 / 0.835): gold is the
strongest labeler fmops has, so it labels the unlabelled pool as a candidate teacher of the student.

Candidates, each a logistic regression (C and class weighting by cross-validated macro-F1 on gold, `tune`):
`logreg_fm_embeddings` on the FM's embeddings (embedding FMs), `tfidf_logreg` on word n-grams (any FM; its
vocabulary learned on every row outside test), `logreg_fm_embeddings_tokens_tfidf` on the embeddings and the FM's
pooled token vectors beside those n-grams (embedding FMs; fm/token_vectors.py); with gold_teacher.contrastive,
`setfit` (the FM's encoder fine-tuned contrastively on gold, then a logistic head: `Contrastive`). Every candidate is
scored by out-of-fold macro-F1 over the gold folds (data.splits.gold_folds), every fold's model tuned and fitted
without that fold (nested), so no out-of-fold figure read the labels of the rows it scores. The kind is the first of
PREFERRED (the richest features first) within two standard errors of the best out of fold (`choose_kind`): on a few
hundred gold rows a kind a row or two ahead out of fold is noise, and an argmax there shipped weaker teachers. Per
fold, that model labels the pool too, so a student's recipe can be scored on a fold whose labels never reached it
(specialist.gold_rows). The weak labelers' votes are left
out on purpose: appended to the embeddings they scored below the embeddings alone out of fold (sms_spam 0.868-0.903
against 0.915; youtube_spam 0.933 both). The two are combined the other way round: the teacher votes in the weak
label matrix (gold_teacher.labeler; label_matrix.with_gold_teacher), and the `both_teachers` recipe averages it
with the label model.
The chosen kind is then self-trained once (`self_train`: refitted on gold and on a sample of the pool it labels), each
fold's teacher on the pool labels of the teacher fitted without that fold; it is used where that scores better out
of fold than the kind alone.
Costs seconds on a few hundred gold rows: a few hundred small fits.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

EMBEDDINGS, TFIDF, SETFIT = "logreg_fm_embeddings", "tfidf_logreg", "setfit"
WITH_TOKENS = "logreg_fm_embeddings_tokens_tfidf"  # the embeddings and the FM's token vectors beside TF-IDF
KINDS = (EMBEDDINGS, TFIDF, SETFIT, WITH_TOKENS)
# the order `choose_kind` prefers within noise: the joined kind nests the embeddings' and TF-IDF's features (its C
# tuned on gold), and on each of 22 measured draws (3 tasks, 100-800 gold rows) it scored above both on test, and
# on 27 more (nineteenth session) it was the best of the three
PREFERRED = (WITH_TOKENS, EMBEDDINGS, TFIDF, SETFIT)
FULL = -1  # the `fold` of a teacher fitted on every gold row
KIND_TOLERANCE = 2.0  # standard errors a kind earlier in PREFERRED may fall short of the best by (choose_kind)


@dataclass
class Features:
    """Every row's features for each teacher kind (rows in the splits' order)."""

    by_kind: dict[str, object]  # kind -> [n_rows, d] array or sparse matrix, or (SetFit) a Contrastive

    @classmethod
    def build(cls, texts: Sequence[str], fit_rows: np.ndarray, embeddings: np.ndarray | None,
              contrastive: Contrastive | None = None, tokens: np.ndarray | None = None) -> Features:
        """`fit_rows`: the rows the TF-IDF vocabulary is learned on (never test: no labels, but test stays unseen);
        `tokens`: the FM's pooled token vectors (fm/token_vectors.py), a candidate beside the embeddings."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = list(texts)
        tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        tfidf.fit([t for t, keep in zip(texts, fit_rows) if keep])
        by_kind: dict[str, object] = {TFIDF: tfidf.transform(texts)}
        if embeddings is not None:
            by_kind[EMBEDDINGS] = embeddings
            if tokens is not None:  # the embedding and the token vector together of norm 1, TF-IDF's of norm 1
                by_kind[WITH_TOKENS] = SideBySide([embeddings, tokens], by_kind[TFIDF], 1 / np.sqrt(2))
        if contrastive is not None:
            by_kind[SETFIT] = contrastive
        return cls({kd: by_kind[kd] for kd in KINDS if kd in by_kind})


class SideBySide:
    """Dense blocks (each scaled by `scale`) beside a sparse matrix, one row per text, joined only for the rows read:
    a joined copy of a 67k-row pool would hold hundreds of MB. Rows index it as they index a matrix; indexing only
    composes row numbers, and `joined` gathers the rows it joins."""

    def __init__(self, dense: list[np.ndarray], sparse_part, scale: float = 1.0, rows: np.ndarray | None = None):
        self.dense, self.sparse, self.scale, self.rows = dense, sparse_part, scale, rows
        n = sparse_part.shape[0] if rows is None else len(rows)
        self.shape = (n, sum(d.shape[1] for d in dense) + sparse_part.shape[1])

    def __getitem__(self, rows) -> SideBySide:
        rows = np.arange(self.shape[0])[rows]
        return SideBySide(self.dense, self.sparse, self.scale, rows if self.rows is None else self.rows[rows])

    def joined(self):
        """The rows as one float64 CSR matrix, written in place: scipy's route (csr_matrix of the dense blocks, then
        hstack) passed through COO's row and column arrays and copies of the values, 3x the result at its peak; at
        10,000 rows of 640 dense columns, the gold teacher's self-training, that was ~130 MB of the 67k-row run's
        peak (docs/measurements.md). The dense columns keep their zeros, which change no product a linear model
        takes."""
        from scipy import sparse

        rows = slice(None) if self.rows is None else self.rows
        right = self.sparse[rows].tocsr()
        n, d = right.shape[0], sum(b.shape[1] for b in self.dense)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(d + np.diff(right.indptr), out=indptr[1:])
        dense_at = np.zeros(indptr[-1] + 1, dtype=np.int8)  # 1 over each row's first d places: its dense columns
        dense_at[indptr[:-1]] = 1
        dense_at[indptr[:-1] + d] -= 1
        dense_at = np.cumsum(dense_at[:-1], dtype=np.int8).view(bool)
        data = np.empty(indptr[-1], dtype=np.float64)
        indices = np.empty(indptr[-1], dtype=np.int32)
        data[~dense_at], indices[~dense_at] = right.data, right.indices + d
        for start in range(0, n, JOIN_CHUNK):  # the dense blocks a chunk of rows at a time: no n x d copy at once
            stop = min(start + JOIN_CHUNK, n)
            at = np.flatnonzero(dense_at[indptr[start]:indptr[stop]]) + indptr[start]
            data[at] = np.hstack([b[start:stop] if self.rows is None else b[self.rows[start:stop]]
                                  for b in self.dense]).ravel() * self.scale
            indices[at] = np.tile(np.arange(d, dtype=np.int32), stop - start)
        return sparse.csr_matrix((data, indices, indptr), shape=(n, self.shape[1]))


@dataclass
class Contrastive:
    """SetFit on gold: the encoder (a local sentence-transformers folder) fine-tuned on pairs of gold rows, then a
    logistic head; `fitted(rows, y)` trains one and returns a predict_proba over row indices."""

    model_path: str
    iterations: int = 5
    seed: int = 0
    texts: list[str] = field(default_factory=list)

    def fitted(self, rows: np.ndarray, y: np.ndarray):
        import tempfile
        import warnings

        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments

        model = SetFitModel.from_pretrained(self.model_path)
        data = Dataset.from_dict({"text": [self.texts[i] for i in rows], "label": [int(v) for v in y]})
        with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():  # SetFit writes nothing we keep
            # its trainer's DataLoader pins memory, a switch its TrainingArguments do not expose; on a CPU torch then
            # warns on every fit that there is nothing to pin it for
            warnings.filterwarnings("ignore", "'pin_memory' argument is set as true but no accelerator", UserWarning)
            args = TrainingArguments(output_dir=out, num_iterations=self.iterations, num_epochs=1, batch_size=16,
                                     seed=self.seed, report_to="none", save_strategy="no", show_progress_bar=False)
            Trainer(model=model, args=args, train_dataset=data).train()
        classes = np.unique(y)
        return lambda idx: (classes, np.asarray(model.predict_proba([self.texts[i] for i in idx], as_numpy=True)))


C_GRID = np.logspace(-2, 3, 6)
PREDICT_CHUNK = 4096  # rows of a SideBySide joined at once to label the pool
JOIN_CHUNK = 256  # rows whose dense blocks SideBySide.joined gathers at once
CV_FOLDS = 3
SELF_TRAIN_ROWS = 10_000  # pool rows a self-training refit reads at most (a seeded sample): bounds time and memory
GOLD_WEIGHT = 10.0  # a gold row's weight beside a pseudo-labelled pool row (weighted by the teacher's confidence)
SELF_TRAINED = "+self_training"  # appended to the teacher's kind in its labels when self-training was used


def tune(X, y: np.ndarray, seed: int = 0):
    """Logistic regression with C and class weighting chosen by cross-validated macro-F1 on the gold rows
    (balanced weighting: a rare class is not given up on); defaults where a class has under 2 rows. The gold-only
    baseline the evaluation reports is this very model, so the gold teacher is never a weaker one."""
    import warnings

    from scipy import sparse
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.multiclass import OneVsRestClassifier

    if isinstance(X, SideBySide):
        X = X.joined()
    counts = np.bincount(y)
    smallest = counts[counts > 0].min()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if smallest < 2:
            return LogisticRegression(max_iter=3000).fit(X, y)
        folds = StratifiedKFold(n_splits=int(min(CV_FOLDS, smallest)), shuffle=True, random_state=seed)
        grid = {"C": C_GRID, "class_weight": [None, "balanced"]}
        model = LogisticRegression(max_iter=3000)
        if sparse.issparse(X):
            # lbfgs crawls on tens of thousands of sparse TF-IDF columns at a large C (seconds per fit); liblinear
            # takes milliseconds there, and takes two labels only: one-vs-rest beyond
            model = LogisticRegression(max_iter=3000, solver="liblinear")
            if len(counts) > 2:
                model, grid = OneVsRestClassifier(model), {f"estimator__{k}": v for k, v in grid.items()}
        return grid_search(model, grid, X, y, folds)


def grid_search(model, grid: dict, X, y: np.ndarray, folds):
    """`model` refitted on all rows with the grid's parameters of the best mean macro-F1 over `folds` (the first
    such in grid order): what scikit-learn's GridSearchCV(scoring="f1_macro") returns, the same fits and the same
    choice, without its per-fit machinery. That machinery (cloning, validation, a scorer per fit) took as long
    as the fits: a few hundred small fits per gold teacher (docs/measurements.md). The result carries
    `best_params_`."""
    from scipy.stats import rankdata
    from sklearn.base import clone
    from sklearn.model_selection import ParameterGrid

    candidates = list(ParameterGrid(grid))
    splits = list(folds.split(X, y))
    scores = np.array([[_macro_f1(y[test], clone(model).set_params(**params).fit(X[train], y[train]).predict(X[test]))
                        for train, test in splits] for params in candidates])
    # GridSearchCV's own rule: rank the mean scores, the lowest rank first (a tie goes to the earlier candidate)
    best = candidates[int(rankdata(-np.average(scores, axis=1), method="min").argmin())]
    fitted = clone(model).set_params(**best).fit(X, y)
    fitted.best_params_ = best
    return fitted


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """scikit-learn's f1_score(average="macro") over the labels either side holds, as it computes it (2 tp over
    true + predicted, per label), without its input checks: it ran once per grid fit."""
    labels, both = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    truth, pred = both[: len(y_true)], both[len(y_true) :]
    n = len(labels)
    tp = np.bincount(truth[truth == pred], minlength=n).astype(np.float64)
    denom = np.bincount(truth, minlength=n).astype(np.float64) + np.bincount(pred, minlength=n).astype(np.float64)
    return float(np.mean(2.0 * tp / denom))


def _proba(model, X, k: int) -> np.ndarray:
    """P[n, k] in label order, whatever classes the model saw (X: features, or row indices for SetFit)."""
    if callable(model):
        classes, probs = model(X)
        out = np.zeros((len(X), k))
        out[:, classes] = probs
        return out
    out = np.zeros((X.shape[0], k))
    if isinstance(X, SideBySide):  # joined a chunk at a time
        for start in range(0, X.shape[0], PREDICT_CHUNK):
            chunk = X[np.arange(start, min(start + PREDICT_CHUNK, X.shape[0]))].joined()
            out[start : start + chunk.shape[0], model.classes_] = model.predict_proba(chunk)
        return out
    out[:, model.classes_] = model.predict_proba(X)
    return out


def _fit(X, y: np.ndarray, seed: int, rows: np.ndarray):
    """One candidate fitted on gold `rows` (X: its features, or a Contrastive)."""
    if isinstance(X, Contrastive):
        return X.fitted(rows, y)
    return tune(X[rows], y, seed)


def _rows(X, rows: np.ndarray):
    return rows if isinstance(X, Contrastive) else X[rows]


def choose_kind(y_gold: np.ndarray, oof: dict[str, np.ndarray], folds: np.ndarray, seed: int = 0) -> tuple[str, dict]:
    """(kind, each candidate's noisy_choice row): the first of PREFERRED whose out-of-fold macro-F1 falls short of
    the best's by at most KIND_TOLERANCE standard errors of the paired difference (noisy_choice: bootstrap over the
    scored gold rows). After a review round on sms_spam (279 gold rows) the embeddings alone led the joined kind by
    0.0013 out of fold, one row's worth; the teacher that argmax chose scored 0.910 on test, the round before's
    0.965. Two standard errors, not the rule's one: the joined kind nests the others' features and was the best on
    test in every measured draw, and on 106 sms_spam gold rows with 13 spam the embeddings led it by 1.13 standard
    errors out of fold (0.953 against 0.900) and scored 0.870 on test against its 0.945."""
    from fmops_pipelines.noisy_choice import simplest_within_noise

    scored = folds != FULL
    order = [kd for kd in PREFERRED if kd in oof]
    k = next(iter(oof.values())).shape[1]
    chosen, noise = simplest_within_noise(y_gold[scored], {kd: oof[kd][scored].argmax(axis=1) for kd in order}, order,
                                          k, "macro_f1", seed, KIND_TOLERANCE)
    return chosen, {kd: row.row() for kd, row in noise.items()}


@dataclass
class GoldTeacher:
    kind: str
    scores: dict[str, float]  # each candidate's out-of-fold macro-F1 on gold
    labels: pd.DataFrame  # id, split, fold, p_<label>: see teach()
    seconds: float
    params: dict  # the chosen kind's C and class weighting
    seconds_by_kind: dict[str, float] = field(default_factory=dict)  # what each candidate's folds cost
    oof: dict[str, np.ndarray] = field(default_factory=dict)  # each candidate's out-of-fold P[gold rows, k]
    self_training: dict = field(default_factory=dict)  # its out-of-fold macro-F1, pool rows, seconds, whether used
    choice: dict[str, dict] = field(default_factory=dict)  # each candidate's shortfall against the best and its noise

    @property
    def out_of_fold_macro_f1(self) -> float:
        """The out-of-fold figure of the labels it gives: the self-trained teacher's where that was used."""
        return self.self_training["out_of_fold_macro_f1"] if self.self_training.get("used") else self.scores[self.kind]


def teach(features: Features, rows: pd.DataFrame, y_gold: np.ndarray, folds: np.ndarray, label_names: list[str],
          seed: int = 0) -> GoldTeacher:
    """Fit every candidate per fold, keep the kind with the best out-of-fold macro-F1, and label every row.

    `rows`: id and split of every row, in the features' order; gold rows are split "dev", in the order of `y_gold`
    and `folds`. The result's labels hold, per row: gold rows once, from the teacher fitted without their own
    fold (`fold` = that fold); unlabelled rows once per fold (`fold` f: fitted without fold f) and once from the
    teacher fitted on all gold (`fold` -1); test rows from that one only. Gold rows of fold -1 (a review queue
    picked them: data.splits.gold_folds) train every fold's teacher, so none is out of fold for them: no label.
    """
    start = time.perf_counter()
    k = len(label_names)
    split = rows["split"].to_numpy()
    gold, pool = np.flatnonzero(split == "dev"), np.flatnonzero(split == "train")
    if len(gold) != len(y_gold):
        raise ValueError(f"{len(y_gold)} gold labels for {len(gold)} gold rows")
    fold_ids = sorted(set(folds.tolist()) - {FULL})
    if not fold_ids:
        raise ValueError("no gold folds: some label has under 2 gold rows")
    oof: dict[str, np.ndarray] = {}
    models: dict[tuple[str, int], object] = {}  # (kind, fold) -> tuned and fitted without that fold
    seconds_by_kind: dict[str, float] = {}
    for kind, X in features.by_kind.items():
        began = time.perf_counter()
        out = np.zeros((len(gold), k))
        for f in fold_ids:
            held = folds == f
            models[kind, f] = _fit(X, y_gold[~held], seed, gold[~held])
            out[held] = _proba(models[kind, f], _rows(X, gold[held]), k)
        oof[kind] = out
        seconds_by_kind[kind] = round(time.perf_counter() - began, 2)
    scores = {kind: _oof_macro_f1(y_gold, p, folds) for kind, p in oof.items()}
    kind, choice = choose_kind(y_gold, oof, folds, seed)
    X = features.by_kind[kind]
    full = _fit(X, y_gold, seed, gold)
    params = getattr(full, "best_params_", {})
    fold_models = {f: models[kind, f] for f in fold_ids}
    began = time.perf_counter()
    trial = _self_training_trial(X, fold_models, y_gold, folds, gold, pool, k, seed)
    if trial is not None:
        self_training = {"out_of_fold_macro_f1": trial["score"], "pool_rows": trial["pool_rows"],
                         "used": round(trial["score"], 4) > round(scores[kind], 4)}
        if self_training["used"]:
            fold_models, oof[kind] = trial["models"], trial["oof"]
            full = self_train(full, X, y_gold, gold, trial["sample"], k)
        self_training["seconds"] = round(time.perf_counter() - began, 2)
    else:
        self_training = {"used": False}
    columns = [f"p_{n}" for n in label_names]
    scored_gold = folds != FULL
    parts = [_frame(rows.iloc[gold[scored_gold]], folds[scored_gold], oof[kind][scored_gold], columns)]
    others = np.flatnonzero(split != "dev")
    parts.append(_frame(rows.iloc[others], FULL, _proba(full, _rows(X, others), k), columns))
    for f in fold_ids:
        parts.append(_frame(rows.iloc[pool], f, _proba(fold_models[f], _rows(X, pool), k), columns))
    name = f"{kind}{SELF_TRAINED}" if self_training["used"] else kind
    labels = pd.concat(parts, ignore_index=True).assign(teacher=name)
    return GoldTeacher(kind, scores, labels, time.perf_counter() - start, params, seconds_by_kind, oof,
                       self_training, choice)


def _oof_macro_f1(y_gold: np.ndarray, oof: np.ndarray, folds: np.ndarray) -> float:
    """Macro-F1 of out-of-fold probabilities over the gold rows that have a fold (0.0 where none has)."""
    from sklearn.metrics import f1_score

    scored = folds != FULL
    if not scored.any():
        return 0.0
    return float(f1_score(y_gold[scored], oof[scored].argmax(axis=1), average="macro", labels=range(oof.shape[1]),
                          zero_division=0))


def _self_training_trial(X, fold_models: dict, y_gold: np.ndarray, folds: np.ndarray, gold: np.ndarray,
                         pool: np.ndarray, k: int, seed: int) -> dict | None:
    """Each fold's teacher self-trained (`self_train`) on a sample of the pool, scored on its held-out fold: the
    out-of-fold figure that decides whether self-training is used. None where there is nothing to do it with
    (no pool, or SetFit: not a linear model refitted in a second)."""
    if not len(pool) or isinstance(X, Contrastive):
        return None
    rng = np.random.default_rng(seed)
    sample = pool if len(pool) <= SELF_TRAIN_ROWS else np.sort(rng.choice(pool, SELF_TRAIN_ROWS, replace=False))
    trained, oof = {}, np.zeros((len(gold), k))
    for f, model in fold_models.items():
        held = folds == f
        trained[f] = self_train(model, X, y_gold[~held], gold[~held], sample, k)
        oof[held] = _proba(trained[f], _rows(X, gold[held]), k)
    return {"score": _oof_macro_f1(y_gold, oof, folds), "models": trained, "oof": oof, "sample": sample, "pool_rows": len(sample)}


def self_train(model, X, y: np.ndarray, gold_rows: np.ndarray, pool_rows: np.ndarray, k: int):
    """`model` refitted with its C and class weighting on its gold rows (each of weight GOLD_WEIGHT) and the pool
    rows it labels (its hard label, weighted by its confidence): one round of self-training. Gold-only, the n-grams
    that no gold row has get no weight; the pool's labels give them one (the token-vector kind refitted so on three
    draws of 200 gold rows each, test macro-F1: sms_spam 0.951 -> 0.962, youtube_spam 0.945 -> 0.951, ag_news 0.853
    -> 0.863; docs/measurements.md)."""
    from sklearn import config_context
    from sklearn.base import clone
    from sklearn.multiclass import OneVsRestClassifier

    probs = _proba(model, _rows(X, pool_rows), k)
    rows = np.concatenate([gold_rows, pool_rows])
    y_all = np.concatenate([y, probs.argmax(axis=1)])
    weights = np.concatenate([np.full(len(y), GOLD_WEIGHT), probs.max(axis=1)])
    features = X[rows].joined() if isinstance(X, SideBySide) else X[rows]
    estimator = clone(getattr(model, "best_estimator_", model))
    with config_context(enable_metadata_routing=True):  # one-vs-rest passes sample weights on only when routed
        if isinstance(estimator, OneVsRestClassifier):
            estimator.estimator.set_fit_request(sample_weight=True)
        return estimator.fit(features, y_all, sample_weight=weights)


def contrastive_encoder(spec, device: str) -> tuple[str | None, str | None]:
    """(the encoder folder SetFit fine-tunes, None) when the spec's gold_teacher.contrastive asks for SetFit here,
    else (None, why not). "auto" asks on a GPU only; "on" without the setfit package is a SpecError."""
    import importlib.util

    from fmops_pipelines.errors import SpecError
    from fmops_pipelines.fm.local_models import resolve_model_path

    mode = spec.gold_teacher.contrastive
    if mode == "off":
        return None, "gold_teacher.contrastive is off"
    if mode == "auto" and not device.startswith("cuda"):
        return None, "no GPU (gold_teacher.contrastive: auto; minutes per fit on CPU: set it to on to use it)"
    if importlib.util.find_spec("setfit") is None:
        if mode == "on":
            raise SpecError("gold_teacher.contrastive: on needs the setfit package (pip install -e '.[setfit]', "
                            "torch==2.13.0 installed first)")
        return None, "the setfit package is not installed (pip install -e '.[setfit]')"
    model = spec.fm.model if spec.fm.backend == "embedding" else "all-MiniLM-L6-v2"
    return str(resolve_model_path(model)), None


def teach_splits(fm, splits: pd.DataFrame, label_names: list[str], seed: int = 0, contrastive: str | None = None,
                 iterations: int = 5) -> GoldTeacher | None:
    """teach() over the splits: the FM's embeddings where it has them, gold_folds; `contrastive`: the local
    encoder folder SetFit fine-tunes (None: no SetFit candidate).
    None where gold cannot be cross-fitted (some label has under 2 gold rows)."""
    from fmops_pipelines.data.splits import gold_folds, label_indices, picked_gold
    k = len(label_names)
    gold = splits["split"] == "dev"
    y_gold = label_indices(splits.loc[gold, "label"], label_names)
    folds = gold_folds(y_gold, k, seed, train_only=picked_gold(splits))
    if (folds == FULL).all():
        return None
    texts = splits["text"].tolist()
    embeddings = fm.embed(texts) if hasattr(fm, "embed") else None
    tokens = fm.embed_tokens(texts) if embeddings is not None and hasattr(fm, "embed_tokens") else None
    setfit = Contrastive(contrastive, iterations, seed, texts) if contrastive else None
    features = Features.build(texts, (splits["split"] != "test").to_numpy(), embeddings, setfit, tokens)
    return teach(features, splits[["id", "split"]], y_gold, folds, label_names, seed)


def _frame(rows: pd.DataFrame, fold, probs: np.ndarray, columns: list[str]) -> pd.DataFrame:
    out = rows[["id", "split"]].reset_index(drop=True).assign(fold=fold)
    out["fold"] = out["fold"].astype(np.int64)
    return pd.concat([out, pd.DataFrame(probs, columns=columns)], axis=1)


def both_teachers(label_model: np.ndarray, teacher: np.ndarray) -> np.ndarray:
    """P[n, k] of the two teachers together: their mean where the label model labels a row, the gold teacher's
    alone where it does not (NaN rows in `label_model`)."""
    return np.where(np.isnan(label_model), teacher, (label_model + teacher) / 2)


def empty_labels(label_names: list[str]) -> pd.DataFrame:
    """The teacher's labels where none could be fitted (gold too small to cross-fit)."""
    return pd.DataFrame({"id": pd.Series(dtype="string"), "split": pd.Series(dtype="string"),
                         "fold": pd.Series(dtype=np.int64), **{f"p_{n}": pd.Series(dtype=float) for n in label_names},
                         "teacher": pd.Series(dtype="string")})


def pool_labels(labels: pd.DataFrame, fold: int = FULL) -> pd.DataFrame:
    """The unlabelled rows' probabilities from the teacher fitted without `fold` (-1: on every gold row), in the
    shape of label_models.training_labels (every row covered)."""
    out = labels[(labels["split"] == "train") & (labels["fold"] == fold)].drop(columns=["split", "fold", "teacher"])
    return out.assign(covered=True, voted=True).reset_index(drop=True)


def gold_oof(labels: pd.DataFrame) -> pd.DataFrame:
    """The gold rows' out-of-fold probabilities (id, fold, p_<label>)."""
    return labels[labels["split"] == "dev"].drop(columns=["split", "teacher"]).reset_index(drop=True)
