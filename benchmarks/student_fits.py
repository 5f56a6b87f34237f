"""The fast student's fits on one teacher's labels: the Adam-trained network, the convex fit, and TF-IDF weighting.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/gold_teacher_devices.py prepare sms_spam \\
        --gold 200 --seeds 0 --out .runs
    .venv/bin/python benchmarks/student_fits.py .runs/sms_spam_g200_s0 [more runs ...]

Per prepared run (fmops's own splits: gold, pool, test): the gold teacher fitted on gold (logistic regression on
the packaged MiniLM's embeddings and on TF-IDF, chosen out of fold: supervision.gold_teacher) labels the pool; on
the pool's labels plus the gold rows, each student is trained alone (no label model, self-training or averaging)
and scored on test (macro-F1): the n-gram network trained by Adam (`solver: adam`, word and word+char), the same
features fitted as a logistic regression (`solver: lbfgs`, specialist/ngram_convex.py), and, not shipped, that
logistic regression on TF-IDF-weighted features (each n-gram's inverse document frequency over the non-test rows,
applied before each family's L2 norm), which the featuriser cannot serve today.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from gold_teacher_devices import PreparedRun


def idf_weighted(X, fit_rows: np.ndarray, word_columns: int):
    """X's n-gram weights times their IDF over `fit_rows`, each family (word / char columns) L2-normalised to
    1/sqrt(2) again, as a FeatureUnion of two TF-IDF vectorisers would."""
    import scipy.sparse as sp
    from sklearn.preprocessing import normalize

    df = np.bincount(X[fit_rows].indices, minlength=X.shape[1])
    Xw = X @ sp.diags(np.log((1 + len(fit_rows)) / (1 + df)) + 1)
    parts = [Xw[:, :word_columns], Xw[:, word_columns:]] if X.shape[1] > word_columns else [Xw]
    return sp.hstack([normalize(p) / np.sqrt(len(parts)) for p in parts], format="csr")


def run_one(path: Path) -> dict:
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from fmops_pipelines.data.splits import gold_folds
    from fmops_pipelines.fm.local_models import resolve_model_path
    from fmops_pipelines.spec import SpecialistSpec
    from fmops_pipelines.specialist.ngram import NgramConfig
    from fmops_pipelines.specialist.ngram_features import Featurizer
    from fmops_pipelines.specialist.selection import CONVEX, fitted, train_student
    from fmops_pipelines.supervision import gold_teacher as gt

    run = PreparedRun.load(path)
    meta, rows, labels, texts, split = run.meta, run.rows, run.labels, run.texts, run.split
    gold, pool, test, y_gold, y_test = run.gold, run.pool, run.test, run.y_gold, run.y_test
    k = len(labels)
    fm = SentenceTransformer(str(resolve_model_path("all-MiniLM-L6-v2")), device="cpu")
    embeddings = fm.encode(texts, batch_size=64, normalize_embeddings=True)
    teacher = gt.teach(gt.Features.build(texts, split != "test", embeddings), rows[["id", "split"]], y_gold,
                       gold_folds(y_gold, k, meta["fold_seed"]), labels, meta["seed"])
    full = gt.pool_labels(teacher.labels).set_index("id")
    soft = full.loc[rows["id"].iloc[pool], [f"p_{n}" for n in labels]].to_numpy()

    def score(pred) -> float:
        return round(float(f1_score(y_test, pred, average="macro")), 4)

    out = {"run": path.stem, "teacher": teacher.kind}
    pool_texts, gold_texts, test_texts = ([texts[i] for i in idx] for idx in (pool, gold, test))
    for arch in ("ngram", "ngram_char"):
        for fit in ("default", CONVEX):
            trained = train_student(fitted(SpecialistSpec(self_training=False), arch, fit), labels, arch, pool_texts,
                                    soft, [], gold_texts, y_gold, device="cpu")
            out[f"{arch}_{'adam' if fit == 'default' else 'lbfgs'}"] = score(
                trained.model.predict_proba(test_texts).argmax(axis=1))
    featurizer = Featurizer(NgramConfig(labels=labels, char_ngrams=(2, 4), family_norm="each"))
    X = featurizer.transform(texts)
    fit_rows = np.concatenate([pool, gold])
    y_fit = np.concatenate([soft.argmax(axis=1), y_gold])
    weight = np.concatenate([soft.max(axis=1), np.ones(len(gold))])
    Xw = idf_weighted(X, np.flatnonzero(split != "test"), featurizer.n_features // 2)
    model = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced").fit(Xw[fit_rows], y_fit,
                                                                                   sample_weight=weight)
    out["ngram_char_lbfgs_idf"] = score(model.predict(Xw[test]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="prepared runs (gold_teacher_devices.py prepare), no suffix")
    args = parser.parse_args(argv)
    for path in args.runs:
        print(json.dumps(run_one(path)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
