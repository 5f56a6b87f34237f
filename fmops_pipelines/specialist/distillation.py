"""Labels -> specialist: choose the teaching label model, build the training rows, train and select students.

The training stage's one call. The students are chosen on the gold rows (teacher choice, early stopping,
calibration, architecture choice) without learning from them; then the gold rows may teach too
(specialist.gold_rows: the chosen student's architectures trained again with them, beside both teachers' labels
on the pool, scored out of fold against the chosen student's own recipe). With `specialist.teacher: encoder`, a
fine-tuned encoder learns the label model's labels first and teaches the fast students in its place
(specialist.encoder_teacher).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.specialist.selection import (
    NGRAM_ARCHITECTURES,
    Selection,
    Trained,
    averaged_candidate,
    candidate_of,
    choose_teacher,
    fitted,
    replay,
    select,
    train_and_select,
    train_student,
)
from fmops_pipelines.specialist.training_data import training_rows
from fmops_pipelines.specialist.training_loop import resumes_recorded
from fmops_pipelines.supervision.label_models import FittedLabelModel, LabelModelCandidates, labels_of


@dataclass
class Distilled:
    teacher: FittedLabelModel
    teacher_scores: dict[str, dict]  # each candidate label model's student dev score and interval (empty: chosen
    # on the label models' own dev scores)
    selection: Selection
    texts: list[str]  # the training texts (an input example for the registry)
    resumed_after_epoch: int = 0  # >0: a training of this step (any: a dropped student's too) resumed a checkpoint
    anchor_rows: dict | None = None  # whether the rows only an anchor labelled were learned, each way's dev score
    encoder_teacher: dict | None = None  # with specialist.teacher: encoder, what the teacher scored and cost
    gold_rows: dict | None = None  # whether the gold rows taught the shipped student: each recipe's out-of-fold score
    sampled: dict | None = None  # the pool was larger than specialist.trial_rows: chosen on a sample, refitted on all
    dev_reads_gold: bool = False  # the label model's students' dev scores read gold (flag_dev_read_gold)


def distill(spec, candidates: LabelModelCandidates, labels_frame: pd.DataFrame, splits: pd.DataFrame,
            checkpoint_dir: Path | None = None, device: str | None = None,
            on_epoch: Callable[[str, dict], None] | None = None, teacher_labels: pd.DataFrame | None = None,
            matrix: pd.DataFrame | None = None, anchors: Sequence[str] = ()) -> Distilled:
    """spec: a TaskSpec (its specialist section may carry per-run overrides); teacher_labels: the gold teacher's
    (supervision.gold_teacher), None or empty for none; `matrix` (the weak label matrix) and its `anchors`: to
    relabel the pool per gold fold where the gold teacher votes in it (fold_pools). Its resumed_after_epoch is
    the latest epoch any training of the step resumed after (training_loop.resumes_recorded)."""
    with resumes_recorded() as resumed:
        out = _distill(spec, candidates, labels_frame, splits, checkpoint_dir, device, on_epoch, teacher_labels,
                       matrix, anchors)
    out.resumed_after_epoch = max(resumed, default=0)
    return out


def _distill(spec, candidates: LabelModelCandidates, labels_frame: pd.DataFrame, splits: pd.DataFrame,
             checkpoint_dir: Path | None, device: str | None, on_epoch: Callable[[str, dict], None] | None,
             teacher_labels: pd.DataFrame | None, matrix: pd.DataFrame | None, anchors: Sequence[str]) -> Distilled:
    s, names = spec.specialist, spec.label_names
    dev = part(splits, "dev")
    dev_texts, y_dev = dev["text"].tolist(), label_indices(dev["label"], names)
    prior = class_balance(dev["label"], names) if s.match_dev_prior else None
    # the choices are made on a sample of a large pool, the chosen student then refitted on all of it
    trial = trial_splits(splits, s.trial_rows, s.seed) if s.teacher != "encoder" else splits
    teacher, scores, taught = choose_teacher(s, spec.name, names, candidates, labels_frame, trial, dev_texts, y_dev,
                                             spec.label_model.select_by, device, prior, checkpoint_dir)
    labels = labels_of(labels_frame, teacher.kind)
    anchor_rows, rows_dev, student = choose_rows(s, spec.name, names, labels, trial, prior, dev_texts, y_dev,
                                                 taught.get(teacher.kind), checkpoint_dir, device)
    texts, targets, unlabeled = training_rows(spec.name, labels, trial, names, prior, anchor_rows)
    direct = {"ngram": student} if student else {}
    del taught, student  # the teacher choice's students: only their scores remain
    if s.teacher == "encoder":
        selection, encoder = through_encoder(s, names, texts, targets, unlabeled, dev_texts, y_dev, direct,
                                             checkpoint_dir, on_epoch, device)
        from fmops_pipelines.specialist.encoder_teacher import TEACHER

        # every student here learned the label model's labels, directly or through the encoder
        read_gold = labels_read_gold(matrix, teacher_labels)
        flag_dev_read_gold(selection.candidates, read_gold, taught_by=("label_model", TEACHER))
        return Distilled(teacher, scores, selection, encoder.texts, anchor_rows=rows_dev,
                         encoder_teacher=encoder.summary(y_dev), dev_reads_gold=read_gold)
    selection = train_and_select(s, names, texts, targets, unlabeled, dev_texts, y_dev, checkpoint_dir, on_epoch,
                                 device, trained=direct or None)
    del direct
    # the candidates averaged while their models are here; it ships unless a recipe with gold rows does (a sampled
    # pool's chosen student is trained again on the whole pool instead)
    averaged = (averaged_candidate(selection, dev_texts, y_dev, texts or dev_texts, s.min_throughput)
                if s.average and trial is splits else None)
    chosen = selection.chosen
    selection.release()  # before the gold rows' cross-fitting, the step's longest part
    per_fold = fold_pools(spec.name, teacher, matrix, list(anchors), teacher_labels, trial, names, prior, anchor_rows)
    read_gold = labels_read_gold(matrix, teacher_labels)  # fold_pools' own condition
    flag_dev_read_gold([*selection.candidates, *([averaged] if averaged else [])], read_gold)
    gold, gold_refit = with_gold_rows(spec, selection, texts, targets, unlabeled, dev, teacher_labels, trial,
                                      checkpoint_dir, device, average=s.average and trial is splits, per_fold=per_fold)
    if averaged is not None:
        selection.candidates.append(averaged)
        if selection.chosen is chosen:
            selection.chosen = averaged
    sampled = None
    if trial is not splits:
        sampled = {"pool_rows": int((splits["split"] == "train").sum()), "trial_rows": s.trial_rows}
        texts, targets, unlabeled = training_rows(spec.name, labels, splits, names, prior, anchor_rows)
        sampled.update(refit_on_pool(spec, selection, gold_refit, texts, targets, unlabeled, dev, teacher_labels,
                                     splits, checkpoint_dir, device, on_epoch))
    selection.release()
    return Distilled(teacher, scores, selection, texts, anchor_rows=rows_dev, gold_rows=gold, sampled=sampled,
                     dev_reads_gold=read_gold)


def flag_dev_read_gold(candidates: Sequence, read_gold: bool, taught_by: Sequence[str] = ("label_model",)) -> None:
    """Mark the label model's students when its labels read the gold teacher's votes on the pool: those votes come
    from the teacher fitted on every gold row, so a pool row that nearly repeats a dev row carries that dev row's
    label to the student, and its dev score reads the rows it is scored on (youtube_spam: the chosen label-model
    student 0.976 on dev, 0.914 out of fold; SST-2 phrases at 67k rows, refitted on the whole pool: 0.899 on dev,
    0.787 out of fold, 0.779 on test). The choices among them still read dev (each is scored the same way, and
    cross-fitting each would multiply the step's cost); what ships against the recipes with gold, and what is
    reported for it, is its out-of-fold score (gold_rows.teach_with_gold). `taught_by`: the teachers whose labels
    are the label model's (with an encoder teacher, its students' too)."""
    for c in candidates:
        c.dev_reads_gold = read_gold and c.taught_by in taught_by


def reported_dev(chosen) -> dict:
    """The shipped student's dev figures as the specialist asset reports them: its dev macro-F1 where that read no
    gold; else none, the figure that read gold under its own name, and its recipe's out-of-fold score where one was
    cross-fitted (gold_rows)."""
    if not chosen.dev_reads_gold:
        return {"dev_macro_f1": chosen.dev["macro_f1"], "dev_accuracy": chosen.dev["accuracy"]}
    return {"dev_macro_f1": None, "dev_accuracy": None,
            "dev_read_gold": {k: round(v, 4) for k, v in chosen.dev.items()},
            "out_of_fold": {k: round(v, 4) for k, v in chosen.out_of_fold.items()} if chosen.out_of_fold else None}


def fold_pools(task: str, teacher: FittedLabelModel, matrix: pd.DataFrame | None, anchors: list[str],
               teacher_labels: pd.DataFrame | None, splits: pd.DataFrame, names: list[str], prior, anchor_rows: bool
               ) -> Callable[[int], tuple[list[str], np.ndarray, list[str]]] | None:
    """f -> the label model's training rows (texts, targets, unlabelled) with the gold teacher's votes on the pool
    from the teacher fitted without gold fold f: what a student scored out of fold on f may learn, so that no gold
    label of f reaches it (the label model's own weights, fitted on every gold row's out-of-fold votes, aside).
    None where the matrix has no gold teacher's column: then the label model's labels do not depend on gold."""
    from functools import cache

    from fmops_pipelines.supervision.label_matrix import with_gold_teacher
    from fmops_pipelines.supervision.label_models import training_labels

    if not labels_read_gold(matrix, teacher_labels):
        return None

    @cache  # the recipes read each fold's rows once per architecture
    def rows(f: int) -> tuple[list[str], np.ndarray, list[str]]:
        labels = training_labels(teacher, with_gold_teacher(matrix, teacher_labels, names, fold=f), names, anchors)
        return training_rows(task, labels, splits, names, prior, anchor_rows)

    return rows


def labels_read_gold(matrix: pd.DataFrame | None, teacher_labels: pd.DataFrame | None) -> bool:
    """Whether the label model's labels read gold: the gold teacher (fitted on every gold row) votes in the matrix."""
    from fmops_pipelines.supervision.label_matrix import GOLD_TEACHER

    return matrix is not None and GOLD_TEACHER in matrix.columns and teacher_labels is not None and bool(
        len(teacher_labels))


def trial_splits(splits: pd.DataFrame, trial_rows: int | None, seed: int) -> pd.DataFrame:
    """`splits` with its train rows cut to a seeded random `trial_rows` of them (the same frame when the pool is
    no larger): what the specialist's choices are made on. The gold, dev and test rows are all kept."""
    train = splits["split"] == "train"
    if trial_rows is None or train.sum() <= trial_rows:
        return splits
    keep = splits[train].sample(n=trial_rows, random_state=seed).index
    return splits[~train | splits.index.isin(keep)]


def refit_on_pool(spec, selection: Selection, gold_refit, texts: Sequence[str], targets: np.ndarray,
                  unlabeled: Sequence[str], dev: pd.DataFrame, teacher_labels: pd.DataFrame | None,
                  splits: pd.DataFrame, checkpoint_dir: Path | None, device: str | None, on_epoch=None) -> dict:
    """The chosen student trained again on the whole pool as it would have been without a sample: its label
    model, rows, architecture, fit and self-training verdict (the sample's, as every other choice: a second round
    on the whole pool that dev then threw away cost the refit at 67k rows a third of its time), early-stopped on
    dev; a gold recipe for the folds' epoch count, temperature and self-training verdict. Epochs are passes over
    the pool: the best epoch count moved little with the pool's size (SST-2 phrases, char n-grams: 12-14 on 2,791
    rows, 8-10 on 37,145), so the steps grow with it (epochs as long as the sample's, the same steps, left that
    student short: 0.773 dev against the sample's 0.794). It becomes the selection's chosen candidate; the sample's
    stays in the table. A gold recipe's dev rows are in its training: it keeps the sample's out-of-fold score and
    reports no dev of its own."""
    s, names = spec.specialist, spec.label_names
    chosen, start = selection.chosen, time.perf_counter()
    if gold_refit is not None and chosen.taught_by == gold_refit[1]:
        cross, name, how = gold_refit
        recipe = next(r for r in pool_recipes(texts, targets, unlabeled, teacher_labels, splits, names)
                      if r.name == name)
        recipe = replace(recipe, gold_repeats=how.get("gold_repeats"))  # as the folds chose (gold_weight_choice)
        refit, reps = cross.refit(recipe, how, texts, whole_pool=True)
        gold = {"refit_gold_repeats": reps}
    else:
        run_spec = fitted(s, chosen.architecture, chosen.fit)
        dev_texts, y_dev = dev["text"].tolist(), label_indices(dev["label"], names)
        done = train_student(run_spec, names, chosen.architecture, texts, targets, unlabeled, dev_texts, y_dev,
                             checkpoint_dir, (lambda a, row: on_epoch(f"{a}_refit", row)) if on_epoch else None, device,
                             name=f"{chosen.key}-refit".replace("+", "_").replace("<-", "_"),
                             keep=chosen.self_training.kept_second_round)
        refit = candidate_of(done, dev_texts, y_dev, texts, taught_by=chosen.taught_by, fit=chosen.fit)
        refit.eligible, refit.dev_reads_gold = chosen.eligible, chosen.dev_reads_gold
        refit.out_of_fold = chosen.out_of_fold
        gold = {("refit_dev_read_gold" if refit.dev_reads_gold else "refit_dev"): round(refit.dev[s.objective], 4)}
    refit.refit_rows = len(texts)
    selection.candidates.append(refit)
    selection.chosen = refit
    return {"refit_seconds": round(time.perf_counter() - start, 1), "refit_train_rows": len(texts),
            ("sample_dev_read_gold" if chosen.dev_reads_gold else "sample_dev"): round(chosen.dev[s.objective], 4),
            **gold}


def with_gold_rows(spec, selection: Selection, texts: Sequence[str], targets: np.ndarray, unlabeled: Sequence[str],
                   dev: pd.DataFrame, teacher_labels: pd.DataFrame | None, splits: pd.DataFrame,
                   checkpoint_dir: Path | None, device: str | None, average: bool = False,
                   per_fold: Callable | None = None) -> tuple[dict | None, tuple | None]:
    """specialist.gold_rows over the chosen student: the recipes it is scored against, and, when one of them
    scores better out of fold, that refit made the selection's chosen candidate (listed among the candidates).
    `average`: a recipe with gold contends averaged over the n-gram architectures (gold_rows.teach_with_gold).
    `per_fold`: the label model's training rows per gold fold (fold_pools). Returns (the summary, how the shipped
    recipe was refitted: GoldRowsResult.refit)."""
    from fmops_pipelines.data.splits import gold_folds, picked_gold
    from fmops_pipelines.specialist.gold_rows import teach_with_gold
    from fmops_pipelines.supervision.gold_teacher import gold_oof

    s, names = spec.specialist, spec.label_names
    if not s.gold_rows:
        return None, None
    y_dev = label_indices(dev["label"], names)
    recipes = pool_recipes(texts, targets, unlabeled, teacher_labels, splits, names, per_fold)
    if teacher_labels is not None and len(teacher_labels):
        # the teacher's folds; a gold row a review queue picked has no out-of-fold label: -1, trained on, not scored
        folds = dev["id"].map(gold_oof(teacher_labels).set_index("id")["fold"]).fillna(-1).to_numpy(dtype=np.int64)
    else:
        folds = gold_folds(y_dev, len(names), spec.splits.seed, train_only=picked_gold(splits))
    chosen = selection.chosen
    others = [c for c in selection.candidates if c.eligible and c.fit == "default" and c.taught_by == "label_model"
              and c.architecture in NGRAM_ARCHITECTURES and c.architecture != chosen.architecture]
    result = teach_with_gold(s, names, chosen, recipes, dev["text"].tolist(), y_dev, folds,
                             list(texts) or dev["text"].tolist(), checkpoint_dir, device, others, average)
    selection.candidates.extend(result.recipes)
    selection.chosen = result.chosen
    return result.summary, result.refit


def pool_recipes(texts: Sequence[str], targets: np.ndarray, unlabeled: Sequence[str],
                 teacher_labels: pd.DataFrame | None, splits: pd.DataFrame, names: list[str],
                 per_fold: Callable | None = None) -> list:
    """The chosen student's own recipe, then the ones with gold rows it is compared with: every recipe compared is
    one more chance for the noise of a few hundred gold rows to pick a worse one (with label_model+gold,
    gold_teacher+gold and both compared on one network, sms_spam with 50 gold rows shipped a student at 0.747 test
    macro-F1 that replaced one at 0.831), so one per way of fitting. The network learns both teachers' labels (never
    far from the best out of fold); the convex fit learns the gold teacher's alone: near-gold labels, which a
    logistic regression fits best (the network's soft cross-entropy is what a majority vote's labels need). On
    three draws of 200 gold rows, the convex word+char student on the self-trained gold teacher's labels scored
    0.960 / 0.938 test macro-F1 (means) on sms_spam / youtube_spam against 0.953 / 0.920 for the network that
    shipped before (docs/measurements.md, "The gold teacher's student"). `per_fold`: the label model's training rows
    per gold fold (fold_pools), where its labels read the gold teacher's votes."""
    from fmops_pipelines.specialist.gold_rows import both_teachers_recipe, gold_teacher_recipe, label_model_recipe
    from fmops_pipelines.specialist.selection import CONVEX

    own = label_model_recipe(texts, targets, unlabeled, gold=False, per_fold=per_fold)
    if teacher_labels is not None and len(teacher_labels):
        train_texts = part(splits, "train")[["id", "text"]]
        teacher = gold_teacher_recipe(teacher_labels, train_texts, names)
        return [own, both_teachers_recipe(own, teacher),
                gold_teacher_recipe(teacher_labels, train_texts, names, fit=CONVEX)]
    return [own, label_model_recipe(texts, targets, unlabeled, per_fold=per_fold)]


def choose_rows(s, task: str, names: list[str], labels: pd.DataFrame, splits: pd.DataFrame, prior,
                dev_texts: Sequence[str], y_dev: np.ndarray, taught: Trained | None = None,
                checkpoint_dir: Path | None = None, device: str | None = None) -> tuple[bool, dict, Trained | None]:
    """Whether the students learn the rows only an anchor labeler voted on, or leave them to self-training.

    Which is better depends on the anchor: a weak one's labels there are noise (sms_spam with a centred
    few-shot anchor: learning them took the student 0.902 -> 0.858 test macro-F1), a good one's are the
    labels the student most needs (with an uncentred one: 0.864 -> 0.911; on youtube_spam 0.901 vs 0.900).
    So an n-gram student is trained each way (`taught`, the teacher choice's student, is the one without)
    and dev keeps the better, ties leaving them out; the two are the same model at the same cost, so
    there is no simpler side for dev's noise to favour, and dev picked the better side in all three cases
    measured. Returns (learn them?, each way's dev score and interval, the kept way's n-gram student).
    """
    from fmops_pipelines.noisy_choice import simplest_within_noise

    if "voted" not in labels or not (labels["voted"] & ~labels["covered"]).any():
        return False, {}, taught
    students = {}
    for way, anchor_rows in (("left_out", False), ("learned", True)):
        if not anchor_rows and taught is not None:
            students[way] = taught
            continue
        students[way] = train_student(s, names, "ngram", *training_rows(task, labels, splits, names, prior, anchor_rows),
                                      dev_texts, y_dev, checkpoint_dir, device=device, name=f"anchor-rows-{way}")
    predictions = {way: t.model.predict_proba(dev_texts).argmax(axis=1) for way, t in students.items()}
    _, scored = simplest_within_noise(y_dev, predictions, list(students), len(names), s.objective, s.seed)
    learn = scored["learned"].score > scored["left_out"].score
    way = "learned" if learn else "left_out"
    return learn, {"anchor_rows": way, **{w: sc.row() for w, sc in scored.items()}}, students[way]


def through_encoder(s, names: list[str], texts: Sequence[str], targets: np.ndarray, unlabeled: Sequence[str],
                    dev_texts: Sequence[str], y_dev: np.ndarray, direct: dict[str, Trained] | None = None,
                    checkpoint_dir: Path | None = None, on_epoch=None, device: str | None = None):
    """The encoder learns the label model's labels and labels every train row; each fast architecture
    learns the encoder's labels, and also (as the check that distillation paid) the label model's, unless
    `direct` holds it already. The encoder itself is a candidate when the spec lists it. Dev chooses within
    its noise, the directly taught student counting as the simpler: the distilled one ships when dev shows
    it better beyond noise (on sms_spam the encoder learned the label model's mistakes, 0.71 dev macro-F1
    against its own n-gram student's 0.92, and its distilled student was 0.025 worse on test).
    Returns (selection, the EncoderTeacher)."""
    from fmops_pipelines.specialist.encoder_teacher import TEACHER, teach

    encoder = teach(s, names, texts, targets, unlabeled, dev_texts, y_dev, checkpoint_dir, on_epoch, device)
    candidates = []
    for arch in s.architectures:
        if arch == TEACHER:
            candidates.append(candidate_of(encoder.trained, dev_texts, y_dev, encoder.texts, dev_pred=encoder.dev_pred))
            continue
        distilled = train_student(s, names, arch, encoder.texts, encoder.soft_labels, [], dev_texts, y_dev,
                                  checkpoint_dir, (lambda a, row: on_epoch(f"{a}_distilled", row)) if on_epoch else None,
                                  device, name=f"{arch}-distilled")
        own = (direct or {}).get(arch)
        if own is None:
            own = train_student(s, names, arch, texts, targets, unlabeled, dev_texts, y_dev, checkpoint_dir,
                                on_epoch, device)
        elif on_epoch:
            replay(own, on_epoch)
        candidates += [candidate_of(own, dev_texts, y_dev, encoder.texts),
                       candidate_of(distilled, dev_texts, y_dev, encoder.texts, taught_by=TEACHER)]
    selection = select(candidates, s.objective, s.min_throughput, y_dev, encoder.texts)
    return selection, encoder
