"""The n-gram student fitted as a logistic regression: the same features and served model, a convex fit.

An n-gram student in eval mode is linear in its features (averaging.py), so a multinomial logistic regression over
the featuriser's matrix is an n-gram student too: its coefficients are the bag (one column per class) and the head
is the identity. Fitted to convergence by L-BFGS with L2 (scikit-learn) on the teacher's labels (argmax, each row
weighted by the label's confidence; class-balanced for a macro-F1 objective), it has no epochs, learning rate or
dropout. Its features are TF-IDF's: the hashed n-grams weighted by inverse document frequency over its training
texts, the n-grams of fewer than two of them dropped (ngram_features.fit_idf), as scikit-learn's TfidfVectorizer
before a logistic regression (on one teacher's labels: ag_news +0.016 test macro-F1 over the unweighted features,
youtube_spam +0.002, sms_spam 0.000; docs/specialists.md). It wins where labels are near gold and loses on a
majority vote's soft labels, whose argmax drops what soft cross-entropy learns from: off by default as a candidate
of its own (specialist.convex_fit; docs/specialists.md, "A convex fit of the n-gram student"), the gold teacher's
student where the gold rows teach (specialist/gold_rows.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from fmops_pipelines.specialist.ngram import CompactTable, NgramConfig, NgramNet, NgramSpecialist
from fmops_pipelines.specialist.ngram_features import Featurizer, fit_idf
from fmops_pipelines.specialist.training_loop import TrainConfig, TrainHistory

C = 1.0  # scikit-learn's default inverse L2 strength; the features are L2-normalised rows, as TF-IDF's


def train_ngram_convex(cfg: NgramConfig, train_cfg: TrainConfig, texts: Sequence[str], soft_labels: np.ndarray,
                       dev_texts: Sequence[str], y_dev: np.ndarray, on_epoch=None,
                       checkpoint=None) -> tuple[NgramSpecialist, TrainHistory]:
    """Fit, fold into an NgramSpecialist (bag = coefficients, identity head), calibrate its temperature on dev.
    `on_epoch` and `checkpoint` are accepted for the trainer's signature: one fit of seconds has neither."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    began = time.perf_counter()
    k = len(cfg.labels)
    cfg = replace(cfg, embed_dim=k, dropout=0.0, idf=True)
    featurizer = Featurizer(cfg, fit_idf(cfg, texts))
    soft = np.asarray(soft_labels, dtype=np.float64)
    y, weight = soft.argmax(axis=1), soft.max(axis=1)
    X = featurizer.transform(list(texts))
    table = CompactTable.touched_by(X)  # unseen columns would get zero weight anyway: the model holds only these
    Xs = table.remap(X)
    bag = np.zeros((len(table.rows), k), dtype=np.float32)
    bias = np.zeros(k, dtype=np.float32)
    present = np.unique(y)
    if len(present) == 1:  # one class in the labels: a constant student, as the data says
        bias[present[0]] = 1.0
    else:
        balanced = "balanced" if train_cfg.class_weight == "balanced" else None
        lr = LogisticRegression(C=C, max_iter=1000, class_weight=balanced, random_state=train_cfg.seed)
        lr.fit(Xs, y, sample_weight=weight)
        coef, intercept = lr.coef_, lr.intercept_
        if len(present) == 2:  # binary: one row of coefficients, for the second class against the first
            coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
        bag[:, present] = coef.T
        bias[present] = intercept
    net = NgramNet(len(table.rows), k, k, 0.0, draw=False)
    net.load_state_dict({"bag.weight": torch.from_numpy(bag), "head.weight": torch.eye(k),
                         "head.bias": torch.from_numpy(bias)}, assign=True)
    # a table lookup: the CPU serves it
    model = NgramSpecialist(cfg, net=net, device=torch.device("cpu"), table=table, idf=featurizer.idf)
    dev_f1 = float(f1_score(y_dev, model.predict_proba(dev_texts).argmax(axis=1), average="macro",
                            labels=range(k), zero_division=0)) if len(dev_texts) else 0.0
    if len(dev_texts):
        model.calibrate(dev_texts, y_dev)
    seconds = time.perf_counter() - began
    return model, TrainHistory(epochs=[{"epoch": 1, "dev_macro_f1": dev_f1}], best_epoch=1, best_dev_macro_f1=dev_f1,
                               seconds=seconds, samples_per_s=len(texts) / max(seconds, 1e-9), device="cpu")
