"""Gold rows teach the student: the chosen student's recipe, trained again with the gold rows beside the pool.

The students are chosen (teacher label model, architecture, fit, epochs) on gold as held-out rows, never trained
on them. Then the chosen architecture is trained on the pool's labels plus the gold rows' own labels (one-hot,
repeated to about GOLD_SHARE of the rows), the pool labelled either by the chosen label model or by the gold
teacher (supervision.gold_teacher). Each such recipe is scored out of fold: per gold fold, a student fitted
without that fold's rows, on pool labels from a teacher fitted without them, early-stopped on another fold and
self-trained as the chosen student was, predicts that fold. The best of the chosen student's own gold score and the recipes' out-of-fold scores ships
(ties: the chosen student, which needs no refit); a recipe ships refitted on all gold and the whole pool for the
folds' median epoch count, its temperature the folds' median, self-trained if most folds kept their round.

Measured on sms_spam (218 gold rows): the gold teacher's labels taught the char n-gram student to 0.937 test
macro-F1 early-stopped, 0.854 out of fold when held to the chosen student's 3 epochs: a recipe needs its own
epoch count, hence the early-stopping fold.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fmops_pipelines.specialist.selection import (
    NGRAM_ARCHITECTURES,
    Candidate,
    dev_scores,
    light_fitted,
    student_configs,
    trainer,
)

GOLD_SHARE = 0.2  # gold rows are repeated until they are about this share of a student's training rows
MAX_REPEATS = 10
# the recipes: the chosen student's own (the label model's labels, no gold rows: its out-of-fold score is what the
# others are compared with, the chosen student's dev score having chosen it), then with the gold rows beside the
# label model's labels, the gold teacher's, or the mean of the two
OWN, LABEL_MODEL, GOLD_TEACHER, BOTH = "label_model", "label_model+gold", "gold_teacher+gold", "both_teachers+gold"


def repeats(n_pool: int, n_gold: int) -> int:
    """How many times each gold row is repeated: a few hundred gold rows must not drown in a pool of thousands
    (a gold label is worth many noisy ones), nor thousands of gold rows be counted several times over."""
    if not n_gold:
        return 0
    return int(np.clip(round(GOLD_SHARE * n_pool / ((1 - GOLD_SHARE) * n_gold)), 1, MAX_REPEATS))


def with_gold(texts: Sequence[str], targets: np.ndarray, gold_texts: Sequence[str], y_gold: np.ndarray,
              k: int, reps: int) -> tuple[list[str], np.ndarray]:
    """The pool's rows and soft targets followed by the gold rows, one-hot, `reps` times each."""
    gold_targets = np.eye(k, dtype=np.float32)[y_gold]
    return ([*texts, *list(gold_texts) * reps],
            np.concatenate([np.asarray(targets, dtype=np.float32), *[gold_targets] * reps]))


@dataclass
class Recipe:
    """Where the pool's labels come from: per gold fold f (trained without it) and for the final fit (f = -1),
    as (texts, soft labels, the unlabelled texts left to self-training)."""

    name: str
    pool: Callable[[int], tuple[list[str], np.ndarray, list[str]]]
    gold: bool = True  # whether the gold rows join the pool's


@dataclass
class GoldRowsResult:
    chosen: Candidate  # the shipped candidate: the chosen student, or a recipe refitted on all gold
    recipes: list[Candidate] = field(default_factory=list)  # each recipe's final fit, scored out of fold
    summary: dict = field(default_factory=dict)


def teach_with_gold(spec, names: list[str], chosen: Candidate, recipes: list[Recipe], gold_texts: Sequence[str],
                    y_gold: np.ndarray, folds: np.ndarray, timing_texts: Sequence[str],
                    checkpoint_dir: Path | None = None, device: str | None = None) -> GoldRowsResult:
    """Score each recipe out of fold, keep the best (the chosen student on ties) and refit it on all gold.

    Per fold f: the student learns the other folds but the next one (f + 1, cyclically), which early-stops it, and
    predicts fold f; the refit on all gold trains for the folds' median best epoch and keeps its last weights."""
    from fmops_pipelines.specialist.selection import Trained, candidate_of
    from fmops_pipelines.specialist.self_training import self_train

    fold_ids = sorted(set(folds.tolist()) - {-1})
    if chosen.architecture not in NGRAM_ARCHITECTURES or len(fold_ids) < 3 or not recipes:
        return GoldRowsResult(chosen, [], {"used": False, "why": "fewer than 3 gold folds" if len(fold_ids) < 3 else
                                           "an encoder student is not refitted"})
    start = time.perf_counter()
    k, objective = len(names), spec.objective
    run_spec = light_fitted(spec, chosen.architecture) if chosen.fit == "light" else spec
    cfg, early_cfg = student_configs(run_spec, names, chosen.architecture, device)
    gold_texts = list(gold_texts)
    texts_of = lambda idx: [gold_texts[i] for i in idx]
    scores = {"chosen (its own dev score, which chose it)": round(chosen.dev[objective], 4)}
    finals, summary = [], {}
    own = None

    def fit(recipe: Recipe, f: int, fit_idx: np.ndarray, stop_idx: np.ndarray, train_cfg, keep: bool | None = None):
        """One student of a recipe, self-trained as the chosen one was (`keep`: the folds' verdict, for the refit)."""
        texts, targets, unlabeled = recipe.pool(f)
        reps = repeats(len(texts), len(fit_idx)) if recipe.gold else 0
        texts, targets = with_gold(texts, targets, texts_of(fit_idx), y_gold[fit_idx], k, reps)
        rounds = []

        def train(texts_, targets_):
            name = f"{recipe.name}-{chosen.key}-fold{f}-round{len(rounds) + 1}".replace("+", "_").replace("<-", "_")
            rounds.append(name)
            checkpoint = checkpoint_dir / f"{name}.pt" if checkpoint_dir else None
            return trainer(chosen.architecture, cfg, train_cfg, texts_of(stop_idx), y_gold[stop_idx],
                           checkpoint=checkpoint)(texts_, targets_)

        model, history, report = self_train(train, texts, targets, unlabeled if spec.self_training else [],
                                            spec.self_training_threshold, keep)
        return model, history, report, reps

    for recipe in recipes:
        oof, temperatures, best_epochs, kept = np.full(len(gold_texts), -1), [], [], []
        for i, f in enumerate(fold_ids):
            stop = folds == fold_ids[(i + 1) % len(fold_ids)]
            held = folds == f
            model, history, report, _ = fit(recipe, f, np.flatnonzero(~held & ~stop), np.flatnonzero(stop),
                                            early_cfg)
            oof[held] = model.predict_proba(texts_of(np.flatnonzero(held))).argmax(axis=1)
            temperatures.append(model.cfg.temperature)
            best_epochs.append(history.best_epoch)
            kept.append(report.kept_second_round)
        scored = folds != -1
        summary[recipe.name] = {"fold_best_epochs": best_epochs, "folds_kept_self_training": sum(kept)}
        if not recipe.gold:  # the chosen student is this recipe fitted on the whole pool already
            own = dev_scores(oof[scored], y_gold[scored], k)
            scores[recipe.name] = round(own[objective], 4)
            continue
        epochs = max(1, int(np.median(best_epochs)))
        final_cfg = replace(early_cfg, epochs=epochs, patience=epochs + 1, keep_last=True)
        everything = np.arange(len(gold_texts))
        # its dev curve is in-sample; self-training kept as most folds kept it
        model, history, report, reps = fit(recipe, -1, everything, everything, final_cfg, 2 * sum(kept) > len(kept))
        model.cfg.temperature = float(np.median(temperatures))
        trained = Trained(chosen.architecture, model, history, report)
        candidate = candidate_of(trained, gold_texts, y_gold, timing_texts, taught_by=recipe.name, dev_pred=oof,
                                 fit=chosen.fit)
        candidate.dev = dev_scores(oof[scored], y_gold[scored], k)
        candidate.eligible = chosen.eligible
        finals.append(candidate)
        scores[recipe.name] = round(candidate.dev[objective], 4)
        summary[recipe.name].update(gold_repeats=reps, refit_epochs=epochs)
    baseline = own[objective] if own else chosen.dev[objective]
    best = max(finals, key=lambda c: c.dev[objective], default=None)
    if best is None or round(best.dev[objective], 4) <= round(baseline, 4):
        best = chosen
    summary.update({"out_of_fold_dev": scores, "shipped": "chosen" if best is chosen else best.taught_by,
                    "seconds": round(time.perf_counter() - start, 1), "used": best is not chosen})
    return GoldRowsResult(best, finals, summary)


def label_model_recipe(texts: Sequence[str], targets: np.ndarray, unlabeled: Sequence[str], gold: bool = True
                       ) -> Recipe:
    """The chosen label model's labels on the pool, the same for every fold. The unsupervised kinds never read
    gold; `stacked` and `best_labeler` were fitted on every gold row's votes (a weight per labeler response, so
    a fold's labels reach the pool's only through those few weights): not cross-fitted, and said so here."""
    texts, unlabeled = list(texts), list(unlabeled)
    return Recipe(LABEL_MODEL if gold else OWN, lambda f: (texts, targets, unlabeled), gold)


def gold_teacher_recipe(teacher_labels: pd.DataFrame, train_texts: pd.DataFrame, names: list[str]) -> Recipe:
    """The gold teacher's labels on the pool, from the teacher fitted without the fold (all gold for f = -1)."""
    from fmops_pipelines.supervision.gold_teacher import pool_labels
    from fmops_pipelines.supervision.label_models import prob_columns

    def pool(f: int):
        rows = pool_labels(teacher_labels, f).merge(train_texts, on="id")
        return rows["text"].tolist(), rows[prob_columns(names)].to_numpy(dtype=np.float32), []  # it labels every row

    return Recipe(GOLD_TEACHER, pool)


def both_teachers_recipe(texts: Sequence[str], targets: np.ndarray, teacher: Recipe) -> Recipe:
    """The mean of the label model's and the gold teacher's labels where the label model labels a row, the gold
    teacher's alone elsewhere: two teachers whose mistakes differ (votes vs embeddings) err less together."""
    index = {t: i for i, t in enumerate(texts)}

    def pool(f: int):
        teacher_texts, teacher_targets, _ = teacher.pool(f)
        ours = np.array([index.get(t, -1) for t in teacher_texts], dtype=np.int64)
        mixed = teacher_targets.copy()
        both = ours >= 0
        mixed[both] = (np.asarray(targets, dtype=np.float32)[ours[both]] + teacher_targets[both]) / 2
        return teacher_texts, mixed, []

    return Recipe(BOTH, pool)
