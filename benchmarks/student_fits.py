"""The fast student's fits on one teacher's labels: the Adam-trained network, the convex fit, with and without IDF.

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/gold_teacher_devices.py prepare sms_spam \\
        --gold 200 --seeds 0 --out .runs
    .venv/bin/python benchmarks/student_fits.py .runs/sms_spam_g200_s0 [more runs ...]

Per prepared run (fmops's own splits: gold, pool, test): the gold teacher fitted on gold (logistic regression on
the packaged MiniLM's embeddings and on TF-IDF, chosen out of fold: supervision.gold_teacher) labels the pool; on
the pool's labels plus the gold rows, each student is trained alone (no label model, self-training or averaging)
and scored on test (macro-F1): the n-gram network trained by Adam (`solver: adam`, word and word+char), the same
features fitted as a logistic regression (`solver: lbfgs`, specialist/ngram_convex.py: TF-IDF-weighted hashed
n-grams since 2026-12-06), and, for comparison, that logistic regression on the features without IDF (what the
convex fit used before).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from gold_teacher_devices import PreparedRun


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
    X = Featurizer(NgramConfig(labels=labels, char_ngrams=(2, 4), family_norm="each")).transform(texts)
    fit_rows = np.concatenate([pool, gold])
    y_fit = np.concatenate([soft.argmax(axis=1), y_gold])
    weight = np.concatenate([soft.max(axis=1), np.ones(len(gold))])
    model = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced").fit(X[fit_rows], y_fit,
                                                                                  sample_weight=weight)
    out["ngram_char_lbfgs_no_idf"] = score(model.predict(X[test]))
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
