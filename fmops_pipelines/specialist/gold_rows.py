"""Gold rows teach the student: the chosen student's recipe, trained again with the gold rows beside the pool.

The students are chosen (teacher label model, architecture, fit, epochs) on gold as held-out rows, never trained
on them. Then the chosen architecture is trained on the pool's labels plus the gold rows' own labels (one-hot,
repeated to about GOLD_SHARE of the rows), the pool labelled by both teachers (the label model's labels averaged
with the gold teacher's, supervision.gold_teacher), or by the label model alone where there is no gold teacher;
that recipe also on the other n-gram architecture; and the gold teacher's labels alone teach the word+char student in
its convex fit (a logistic regression: what near-gold labels are best learned by), which ships whenever it is within
noise of the best (`pick`); its gold rows are repeated as the rule says or MAX_REPEATS times, whichever scores
better out of fold (`gold_weight_choice`). Each recipe is scored out of fold: per gold fold, a student
fitted without that fold's rows, on pool labels from a teacher fitted without them, early-stopped on another fold
and self-trained as the chosen student was, predicts that fold. So is the chosen student's own recipe (no gold rows), and a network's recipe with gold replaces it only when
better by twice the noise of so few rows (`pick`). It ships refitted on all gold and the whole pool for the folds'
median epoch count, self-trained if most folds kept their round, with one temperature fitted on every fold's
out-of-fold logits pooled: a fold student's own temperature is fitted on its ~40 early-stopping rows, which a
student separates perfectly often enough that it sits at the grid's floor (0.01, near one-hot probabilities).

With specialist.average, the best recipe with gold, scored on every n-gram architecture fast enough to ship, is
compared and shipped as their average (specialist.averaging), as the label model's students are: its out-of-fold
logits are the mean of the architectures' fold students' logits, which is exactly what the average of each fold's
students predicts, so its score is as honest as theirs; dev's few hundred rows cannot rank those students.

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

from fmops_pipelines.probability import fit_temperature
from fmops_pipelines.specialist.averaging import joins
from fmops_pipelines.specialist.selection import (
    NGRAM_ARCHITECTURES,
    Candidate,
    dev_scores,
    fitted,
    student_configs,
    trainer,
)
from fmops_pipelines.specialist.student import TEMPERATURE_GRID

GOLD_SHARE = 0.2  # gold rows are repeated until they are about this share of a student's training rows
MAX_REPEATS = 10
# the recipes: the chosen student's own (the label model's labels, no gold rows: its out-of-fold score is what the
# others are compared with, the chosen student's dev score having chosen it), then with the gold rows beside the
# label model's labels, the gold teacher's, or the mean of the two
OWN, LABEL_MODEL, GOLD_TEACHER, BOTH = "label_model", "label_model+gold", "gold_teacher+gold", "both_teachers+gold"
AVERAGED = "averaged"  # in place of a candidate's key: the best recipe with gold averaged over the architectures


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
    fit: str | None = None  # a fit its students always take ("convex"), whatever the architecture's own
    gold_repeats: int | None = None  # each gold row's repeats; None: `repeats`, about GOLD_SHARE of the rows


@dataclass
class GoldRowsResult:
    chosen: Candidate  # the shipped candidate: the chosen student, or a recipe refitted on all gold
    recipes: list[Candidate] = field(default_factory=list)  # the refitted recipe, if one ships (scored out of fold)
    summary: dict = field(default_factory=dict)
    refit: tuple[CrossFit, str, dict] | None = None  # how the shipped recipe was refitted (its CrossFit, its name,
    # `how`), to refit it on the whole pool when it was chosen on a sample


@dataclass
class CrossFit:
    """Cross-fits recipes for one student configuration (an architecture and its fit) on the gold folds."""

    spec: object  # the SpecialistSpec
    names: list[str]
    base: Candidate  # whose architecture, fit and eligibility the recipe's students take
    gold_texts: list[str]
    y_gold: np.ndarray
    folds: np.ndarray
    checkpoint_dir: Path | None = None
    device: str | None = None

    def configs(self):
        """(model config, TrainConfig) its students are trained with: its architecture's, with its fit."""
        run_spec = fitted(self.spec, self.base.architecture, self.base.fit)
        return student_configs(run_spec, self.names, self.base.architecture, self.device)

    def _texts(self, idx: np.ndarray) -> list[str]:
        return [self.gold_texts[i] for i in idx]

    def _fit(self, recipe: Recipe, f: int, fit_idx: np.ndarray, stop_idx: np.ndarray, epochs: int | None = None,
             keep: bool | None = None, whole_pool: bool = False):
        """One student of a recipe, early-stopped on `stop_idx` (or trained `epochs` and kept as it ends) and
        self-trained as the chosen student was (`keep`: the folds' verdict, for the refit). `whole_pool`: the
        recipe was scored on a sample of the pool and this is its refit on all of it (its own memo)."""
        s, base = self.spec, self.base
        cfg, train_cfg = self.configs()
        if epochs is not None:
            train_cfg = replace(train_cfg, epochs=epochs, patience=epochs + 1, keep_last=True)
        texts, targets, unlabeled = recipe.pool(f)
        reps = (recipe.gold_repeats or repeats(len(texts), len(fit_idx))) if recipe.gold else 0
        texts, targets = with_gold(texts, targets, self._texts(fit_idx), self.y_gold[fit_idx], len(self.names), reps)
        rounds: list[str] = []

        def train(texts_, targets_):
            whole = "-pool" if whole_pool else ""
            rounds.append(f"{recipe.name}-{base.key}-fold{f}{whole}-round{len(rounds) + 1}".replace("+", "_")
                          .replace("<-", "_"))
            checkpoint = self.checkpoint_dir / f"{rounds[-1]}.pt" if self.checkpoint_dir else None
            return trainer(base.architecture, cfg, train_cfg, self._texts(stop_idx), self.y_gold[stop_idx],
                           checkpoint=checkpoint)(texts_, targets_)

        from fmops_pipelines.specialist.self_training import self_train

        model, history, report = self_train(train, texts, targets, unlabeled if s.self_training else [],
                                            s.self_training_threshold, keep)
        return model, history, report, reps

    def score(self, recipe: Recipe) -> tuple[dict, dict]:
        """(out-of-fold dev scores, what to refit with): per fold f, a student fitted on the folds but f and the
        next one (which early-stops it) predicts fold f."""
        fold_ids = sorted(set(self.folds.tolist()) - {-1})
        oof, best_epochs, kept = np.full(len(self.gold_texts), -1), [], []
        oof_logits = np.zeros((len(self.gold_texts), len(self.names)), dtype=np.float64)
        fold_temperatures = []
        for i, f in enumerate(fold_ids):
            stop, held = self.folds == fold_ids[(i + 1) % len(fold_ids)], self.folds == f
            model, history, report, _ = self._fit(recipe, f, np.flatnonzero(~held & ~stop), np.flatnonzero(stop))
            oof_logits[held] = model.logits(self._texts(np.flatnonzero(held)))
            oof[held] = oof_logits[held].argmax(axis=1)
            fold_temperatures.append(model.cfg.temperature)
            best_epochs.append(history.best_epoch)
            kept.append(report.kept_second_round)
        scored = self.folds != -1
        return dev_scores(oof[scored], self.y_gold[scored], len(self.names)), {
            "oof": oof, "oof_logits": oof_logits, "epochs": max(1, int(np.median(best_epochs))),
            "temperature": fit_temperature(oof_logits[scored], self.y_gold[scored], TEMPERATURE_GRID),
            "fold_temperatures": fold_temperatures,
            "self_training": 2 * sum(kept) > len(kept), "fold_best_epochs": best_epochs}

    def refit(self, recipe: Recipe, how: dict, timing_texts: Sequence[str], whole_pool: bool = False
              ) -> tuple[Candidate, int]:
        """The recipe on all gold and the whole pool for the folds' median epochs (its dev curve is in-sample, so
        it neither stops nor calibrates it); the candidate carries the out-of-fold predictions and scores.
        `whole_pool`: scored on a sample of the pool (specialist.trial_rows), refitted on all of it."""
        from fmops_pipelines.specialist.selection import Trained, candidate_of

        everything = np.arange(len(self.gold_texts))
        model, history, report, reps = self._fit(recipe, -1, everything, everything, how["epochs"],
                                                 how["self_training"], whole_pool)
        model.cfg.temperature = how["temperature"]
        candidate = candidate_of(Trained(self.base.architecture, model, history, report), self.gold_texts,
                                 self.y_gold, timing_texts, taught_by=recipe.name, dev_pred=how["oof"], fit=self.base.fit)
        scored = self.folds != -1
        candidate.dev = dev_scores(how["oof"][scored], self.y_gold[scored], len(self.names))
        candidate.eligible = self.base.eligible
        return candidate, reps


def teach_with_gold(spec, names: list[str], chosen: Candidate, recipes: list[Recipe], gold_texts: Sequence[str],
                    y_gold: np.ndarray, folds: np.ndarray, timing_texts: Sequence[str],
                    checkpoint_dir: Path | None = None, device: str | None = None,
                    others: Sequence[Candidate] = (), average: bool = False) -> GoldRowsResult:
    """Score each recipe out of fold on the chosen student's architecture, then the best recipe with gold on each
    of `others` (the other n-gram architectures fast enough to ship: the dev choice among them was made without
    gold rows, which can favour another); the recipe `pick` ships is refitted on all gold, else the chosen stays.
    `average`: the best recipe with gold contends as the average over the architectures that scored it."""
    fold_ids = sorted(set(folds.tolist()) - {-1})
    if chosen.architecture not in NGRAM_ARCHITECTURES or len(fold_ids) < 3 or not recipes:
        return GoldRowsResult(chosen, [], {"used": False, "why": "fewer than 3 gold folds" if len(fold_ids) < 3 else
                                           "an encoder student is not refitted"})
    start = time.perf_counter()
    objective = spec.objective
    fits = {c.key: CrossFit(spec, names, c, list(gold_texts), y_gold, folds, checkpoint_dir, device)
            for c in [chosen, *others]}
    scores = {"chosen (its own dev score, which chose it)": round(chosen.dev[objective], 4)}
    scored: list[tuple[str, Recipe, dict, dict]] = []  # (candidate key, recipe, out-of-fold scores, how)
    summary: dict = {}
    for recipe in (r for r in recipes if r.fit is None):
        dev, how = fits[chosen.key].score(recipe)
        scored.append((chosen.key, recipe, dev, how))
        if not recipe.gold:  # the chosen student's own recipe: its honest figure, where its dev score read gold
            chosen.out_of_fold = dev
    gold_recipes = [x for x in scored if x[1].gold]
    if gold_recipes and others:
        best = max(gold_recipes, key=lambda x: x[2][objective])[1]
        for other in others:
            dev, how = fits[other.key].score(best)
            scored.append((other.key, best, dev, how))
        members = [x for x in scored if x[1] is best]
        if average and joins([fits[key].configs()[0] for key, *_ in members]):
            scored.append(averaged_score(members, y_gold, folds, len(names)))
    averaged = scored[-1][0] == AVERAGED
    for recipe in (r for r in recipes if r.fit is not None):  # on the richest n-gram architecture, in its own fit
        base = replace(max([chosen, *others], key=lambda c: c.architecture == "ngram_char"), fit=recipe.fit,
                       model=None)
        fits[base.key] = CrossFit(spec, names, base, list(gold_texts), y_gold, folds, checkpoint_dir, device)
        weighed = gold_weight_choice(fits[base.key], recipe, objective)
        summary[f"{recipe.name} ({base.key}): gold repeats"] = weighed["scores"]
        scored.append((base.key, *weighed["chosen"]))
    for key, recipe, dev, how in scored:
        name = recipe.name if key == chosen.key else f"{recipe.name} ({key})"
        scores[name] = round(dev[objective], 4)
        if key == AVERAGED:
            summary[name] = {"temperature": how["temperature"], "averaged_from": list(how["members"])}
        else:
            summary[name] = {"temperature": how["temperature"], "fold_best_epochs": how["fold_best_epochs"],
                             "self_training": how["self_training"],
                             "fold_temperatures": [round(t, 4) for t in how["fold_temperatures"]]}
    # with an average, it is the contender with gold rows: dev's rows do not rank its members either
    contenders = [x for x in scored if not x[1].gold or x[0] == AVERAGED or x[1].fit] if averaged else scored
    winner = pick(contenders, y_gold[folds != -1], folds != -1, len(names), objective, spec.seed)
    shipped, refits, refit = chosen, [], None
    if winner is not None and winner[0] == AVERAGED:
        shipped, reps = refit_averaged(fits, winner[1], winner[3], timing_texts)
        refits.append(shipped)
        summary["refit"] = {"gold_repeats": reps, "averaged_from": shipped.averaged_from,
                            "epochs": {k: how["epochs"] for k, how in winner[3]["members"].items()}}
    elif winner is not None:
        candidate, reps = fits[winner[0]].refit(winner[1], winner[3], timing_texts)
        refits.append(candidate)
        shipped = candidate
        summary["refit"] = {"gold_repeats": reps, "epochs": winner[3]["epochs"]}
        refit = (fits[winner[0]], winner[1].name, winner[3])
    fit = f"+{shipped.fit}" if shipped.fit not in ("default", "averaged") else ""  # the convex student says so
    summary.update({"out_of_fold_dev": scores, "shipped": "chosen" if shipped is chosen else
                    f"{shipped.taught_by} ({shipped.architecture}{fit}{', averaged' if shipped.averaged_from else ''})",
                    "seconds": round(time.perf_counter() - start, 1), "used": shipped is not chosen})
    return GoldRowsResult(shipped, refits, summary, refit)


def gold_weight_choice(fit: CrossFit, recipe: Recipe, objective: str) -> dict:
    """The convex student's recipe scored with its gold rows repeated as `repeats` says and MAX_REPEATS times, the
    better out of fold kept (ties: `repeats`): how much a gold row should weigh beside the teacher's labels differs
    by task. On the stored pool labels of twelve review-round runs (a throwaway script, test macro-F1), ten repeats
    against the rule's one took youtube_spam from 0.943 to 0.953 (higher on all six) and three against ten kept
    sms_spam at 0.972 where ten gave 0.969 (lower on all six). A convex fit costs a second or two per fold."""
    options = {}
    for reps in (None, MAX_REPEATS):
        variant = replace(recipe, gold_repeats=reps)
        dev, how = fit.score(variant)
        options["rule" if reps is None else reps] = (variant, dev, {**how, "gold_repeats": reps})
    best = max(options, key=lambda r: (round(options[r][1][objective], 4), r == "rule"))
    return {"chosen": options[best], "scores": {str(r): round(o[1][objective], 4) for r, o in options.items()}
            | {"chosen": str(best)}}


def averaged_score(members: list[tuple[str, Recipe, dict, dict]], y_gold: np.ndarray, folds: np.ndarray, k: int
                   ) -> tuple[str, Recipe, dict, dict]:
    """One recipe scored on several n-gram architectures, as the average of their students: per fold, the mean
    of the fold students' logits (what averaging.average of those students predicts), one temperature on all."""
    scored = folds != -1
    logits = np.mean([member["oof_logits"] for *_, member in members], axis=0)
    oof = np.where(scored, logits.argmax(axis=1), -1)
    how = {"oof": oof, "oof_logits": logits, "members": {key: member for key, _, _, member in members},
           "temperature": fit_temperature(logits[scored], y_gold[scored], TEMPERATURE_GRID)}
    return AVERAGED, members[0][1], dev_scores(oof[scored], y_gold[scored], k), how


def refit_averaged(fits: dict[str, CrossFit], recipe: Recipe, how: dict, timing_texts: Sequence[str]
                   ) -> tuple[Candidate, int]:
    """Each member architecture refitted on all gold and the pool (CrossFit.refit), averaged into one student with
    the members' pooled out-of-fold temperature; the candidate carries the average's out-of-fold scores."""
    from fmops_pipelines.specialist.averaging import average, richest
    from fmops_pipelines.specialist.selection import Trained, candidate_of
    from fmops_pipelines.specialist.training_loop import TrainHistory

    refitted = {key: fits[key].refit(recipe, member, timing_texts) for key, member in how["members"].items()}
    members = [c for c, _ in refitted.values()]
    model = average([c.model for c in members])
    model.cfg.temperature = how["temperature"]
    first = next(iter(fits.values()))
    architecture = next(c.architecture for c in members if c.model is richest([m.model for m in members]))
    history = TrainHistory(best_epoch=members[0].history.best_epoch,
                           best_dev_macro_f1=members[0].history.best_dev_macro_f1,
                           seconds=sum(c.history.seconds for c in members), device=members[0].history.device)
    candidate = candidate_of(Trained(architecture, model, history, members[0].self_training), first.gold_texts,
                             first.y_gold, timing_texts, taught_by=recipe.name, dev_pred=how["oof"], fit="averaged")
    scored = first.folds != -1
    candidate.dev = dev_scores(how["oof"][scored], first.y_gold[scored], len(first.names))
    candidate.eligible = all(c.eligible for c in members)
    candidate.averaged_from = [c.key for c in members]
    return candidate, max(reps for _, reps in refitted.values())


def pick(scored: list[tuple[str, Recipe, dict, dict]], y: np.ndarray, rows: np.ndarray, k: int, objective: str,
         seed: int = 0):
    """The recipe with gold that ships, or None (the chosen student stays). Out-of-fold scores on a few hundred
    gold rows are noisy: on sms_spam with 50 gold rows a recipe scored 1.0 out of fold and 0.747 on test (the
    student it replaced: 0.831); with 209, one 0.03 ahead of the chosen student's own recipe out of fold scored
    0.844 on test, below logistic regression on the same gold rows (0.897). So a network's recipe with gold ships
    only when it beats the chosen student's own recipe (no gold rows, which needs no refit) by more than twice the
    paired bootstrap standard error of the difference (noisy_choice); without that one to compare, the best ships.

    A recipe with its own fit (the gold teacher's convex student) comes first: it ships whenever it is within one
    standard error of the best (noisy_choice's rule, it first). A logistic regression on the strongest labeler's
    labels has no epochs, early stopping or dropout to fit to the folds, so it is the least variable of the
    contenders: measured on three draws of 200 gold rows of youtube_spam, it was the best out of fold or within
    0.006 of it each time and the best on test each time (0.936 / 0.943 / 0.934 against the shipped network's
    0.920 / 0.928 / 0.913), while the 2-SE rule kept the network (docs/measurements.md)."""
    from fmops_pipelines.noisy_choice import simplest_within_noise

    own = [x for x in scored if not x[1].gold]
    gold = [x for x in scored if x[1].gold]
    if not gold:
        return None
    convex = next((x for x in gold if x[1].fit), None)
    if convex is not None:
        named = {"convex": convex, **({"own": own[0]} if own else {}), "best": max(gold, key=lambda x: x[2][objective])}
        choice, _ = simplest_within_noise(y, {n: x[3]["oof"][rows] for n, x in named.items()}, list(named), k,
                                          objective, seed)
        if choice == "convex":
            return convex
        gold = [x for x in gold if x is not convex]
    best = max(gold, key=lambda x: x[2][objective])
    if not own:
        return best
    named = {"own": own[0], "best": best}
    choice, _ = simplest_within_noise(y, {n: x[3]["oof"][rows] for n, x in named.items()}, ["own", "best"], k,
                                      objective, seed, tolerance=2.0)
    return best if choice == "best" else None


def label_model_recipe(texts: Sequence[str], targets: np.ndarray, unlabeled: Sequence[str], gold: bool = True,
                       per_fold: Callable[[int], tuple[list[str], np.ndarray, list[str]]] | None = None) -> Recipe:
    """The chosen label model's labels on the pool: for fold f, `per_fold(f)` (its labels with the gold teacher's
    votes from the teacher fitted without f: distillation.fold_pools), else the same for every fold. With the
    teacher's all-gold votes, a fold's gold labels reached its student through the pool's near-duplicates of its
    rows: on youtube_spam the label model's student scored 0.961 out of fold and 0.927 on test. `stacked` and
    `best_labeler` were fitted on every gold row's out-of-fold votes (a weight per labeler response, so a fold's
    labels reach the pool's only through those few weights): not cross-fitted, and said so here."""
    texts, unlabeled = list(texts), list(unlabeled)

    def pool(f: int):
        return per_fold(f) if per_fold is not None and f != -1 else (texts, targets, unlabeled)

    return Recipe(LABEL_MODEL if gold else OWN, pool, gold)


def gold_teacher_recipe(teacher_labels: pd.DataFrame, train_texts: pd.DataFrame, names: list[str],
                        fit: str | None = None) -> Recipe:
    """The gold teacher's labels on the pool, from the teacher fitted without the fold (all gold for f = -1). It
    labels every pool row the FM may label; under fm.budget the rest is left to self-training. `fit`: the fit its
    students take (Recipe.fit)."""
    from fmops_pipelines.supervision.gold_teacher import pool_labels
    from fmops_pipelines.supervision.label_models import prob_columns

    labelled = set(teacher_labels.loc[teacher_labels["split"] == "train", "id"])
    rest = train_texts.loc[~train_texts["id"].isin(labelled), "text"].tolist()

    def pool(f: int):
        rows = pool_labels(teacher_labels, f).merge(train_texts, on="id")
        return rows["text"].tolist(), rows[prob_columns(names)].to_numpy(dtype=np.float32), rest

    return Recipe(GOLD_TEACHER, pool, fit=fit)


def both_teachers_recipe(label_model: Recipe, teacher: Recipe) -> Recipe:
    """The mean of the label model's and the gold teacher's labels where the label model labels a row, the gold
    teacher's alone elsewhere: two teachers whose mistakes differ (votes vs embeddings) err less together. Both
    per fold, as their own recipes give them."""
    from fmops_pipelines.supervision.gold_teacher import both_teachers

    def pool(f: int):
        teacher_texts, teacher_targets, _ = teacher.pool(f)
        texts, targets, _ = label_model.pool(f)
        index = {t: i for i, t in enumerate(texts)}
        ours = np.array([index.get(t, -1) for t in teacher_texts], dtype=np.int64)
        theirs = np.asarray(targets, dtype=np.float32)
        theirs = np.where((ours >= 0)[:, None], theirs[np.maximum(ours, 0)], np.nan)
        return teacher_texts, both_teachers(theirs, teacher_targets).astype(np.float32), []

    return Recipe(BOTH, pool)
