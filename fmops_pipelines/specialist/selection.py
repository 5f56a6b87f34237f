"""Train every architecture the spec names on the same probabilistic labels and pick one on dev.

The objective is the spec's dev metric among the candidates that reach `min_throughput` texts/s on this
machine (e.g. "the most accurate model that still labels 5,000 texts/s"); ties go to the faster one.
If none is fast enough, the fastest is returned, flagged, and the throughput gate blocks its promotion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from fmops_pipelines.specialist.self_training import SelfTrainingReport, self_train
from fmops_pipelines.specialist.student import Student, measure_throughput
from fmops_pipelines.specialist.training_loop import TrainConfig, TrainHistory

NGRAM_ARCHITECTURES = ("ngram", "ngram_char")  # the fast students: one network, with or without char n-grams
CONVEX = "convex"  # a candidate's `fit` when it is the n-gram student fitted as a logistic regression


@dataclass
class Candidate:
    architecture: str
    model: Student | None  # None once released (Selection.release): only the chosen one's is kept
    history: TrainHistory
    self_training: SelfTrainingReport
    dev: dict[str, float]
    texts_per_s: float
    eligible: bool = True
    noise: dict | None = None  # its dev interval and shortfall against the best (noisy_choice), when compared
    dev_pred: np.ndarray | None = None  # its predicted class per dev row (what `dev` and the noise are computed from)
    taught_by: str = "label_model"  # whose labels it learned: the label model's, or the encoder teacher's
    fit: str = "default"  # "light": trained with specialist.light_fit's settings instead of its section's
    refit_rows: int = 0  # >0: chosen on a sample of the pool (specialist.trial_rows), then refitted on this many rows
    averaged_from: list[str] = field(default_factory=list)  # fit "averaged": the candidates it is the mean of
    # its labels on the pool read the gold teacher's votes, from the teacher fitted on every gold row: its dev score
    # read the dev rows' labels through the pool's near-duplicates of them (distillation.flag_dev_read_gold)
    dev_reads_gold: bool = False
    out_of_fold: dict[str, float] | None = None  # its recipe's out-of-fold scores, where one was cross-fitted

    @property
    def key(self) -> str:
        """Unique among one selection's candidates: an architecture may come taught by two teachers, or fitted twice."""
        key = self.architecture if self.taught_by == "label_model" else f"{self.architecture}<-{self.taught_by}"
        return key if self.fit == "default" else f"{key}+{self.fit}"

    def row(self) -> dict:
        noise = {"dev_interval_90": self.noise["interval_90"], "within_noise_of_best": self.noise["within_noise_of_best"]
                 } if self.noise else {}
        return {"architecture": self.architecture, "taught_by": self.taught_by, "fit": self.fit,
                "dev_macro_f1": round(self.dev["macro_f1"], 4), **noise,
                "dev_accuracy": round(self.dev["accuracy"], 4), "texts_per_s": round(self.texts_per_s, 1),
                "best_epoch": self.history.best_epoch, "train_seconds": round(self.history.seconds, 1),
                "train_samples_per_s": round(self.history.samples_per_s, 1),
                "pseudo_labeled": self.self_training.pseudo_labeled,
                "self_training_kept": self.self_training.kept_second_round, "eligible": self.eligible,
                **({"refit_rows": self.refit_rows} if self.refit_rows else {}),
                "dev_reads_gold": self.dev_reads_gold,
                **({"out_of_fold_macro_f1": round(self.out_of_fold["macro_f1"], 4)} if self.out_of_fold else {}),
                **({"averaged_from": self.averaged_from} if self.averaged_from else {})}


@dataclass
class Selection:
    chosen: Candidate
    candidates: list[Candidate] = field(default_factory=list)
    met_min_throughput: bool = True

    def table(self) -> list[dict]:
        return [{**c.row(), "chosen": c is self.chosen} for c in self.candidates]

    def release(self) -> None:
        """Drop every candidate's model but the chosen one's: the table needs only their scores, and each model
        (an encoder's weights, an n-gram student's table of the rows its texts touched) the rest of the step
        would carry."""
        for c in self.candidates:
            if c is not self.chosen:
                c.model = None


def student_configs(spec, labels: list[str], architecture: str,
                    device: str | None = None) -> tuple[object, TrainConfig]:
    """The model and training configs of one architecture from a SpecialistSpec (device None: auto)."""
    from fmops_pipelines.specialist.encoder import EncoderConfig
    from fmops_pipelines.specialist.ngram import NgramConfig

    if architecture in NGRAM_ARCHITECTURES:
        s = getattr(spec, architecture)
        return (NgramConfig(labels=labels, word_ngrams=s.word_ngrams, char_ngrams=s.char_ngrams,
                            hash_bits=s.hash_bits, embed_dim=s.embed_dim, dropout=s.dropout),
                TrainConfig(epochs=s.epochs, batch_size=s.batch_size, learning_rate=s.learning_rate,
                            weight_decay=s.weight_decay, patience=s.patience, seed=spec.seed, loss=spec.loss,
                            deterministic=spec.deterministic, device=device, solver=s.solver,
                            class_weight="balanced" if spec.objective == "macro_f1" else None))
    if architecture == "encoder":
        s = spec.encoder
        return (EncoderConfig(labels=labels, model=s.model, max_length=s.max_length, dropout=s.dropout),
                TrainConfig(epochs=s.epochs, batch_size=s.batch_size, learning_rate=s.learning_rate,
                            weight_decay=s.weight_decay, patience=s.patience, seed=spec.seed, loss=spec.loss,
                            deterministic=spec.deterministic, warmup_ratio=s.warmup_ratio, device=device))
    raise ValueError(f"unknown architecture '{architecture}'")


def trainer(architecture: str, cfg, train_cfg: TrainConfig, dev_texts: Sequence[str], y_dev: np.ndarray,
            on_epoch=None, checkpoint: Path | None = None) -> Callable:
    """train(texts, soft_labels) -> (student, history) for one architecture."""
    from fmops_pipelines.specialist.encoder import train_encoder
    from fmops_pipelines.specialist.ngram import train_ngram
    from fmops_pipelines.specialist.ngram_convex import train_ngram_convex

    ngram = train_ngram_convex if train_cfg.solver == "lbfgs" else train_ngram
    fn = {"ngram": ngram, "ngram_char": ngram, "encoder": train_encoder}[architecture]
    return lambda texts, soft: fn(type(cfg)(**{**cfg.__dict__, "temperature": 1.0}), train_cfg, texts, soft,
                                  dev_texts, y_dev, on_epoch, checkpoint)


def dev_scores(pred: np.ndarray, y_dev: np.ndarray, k: int) -> dict[str, float]:
    return {"macro_f1": float(f1_score(y_dev, pred, average="macro", labels=range(k), zero_division=0)),
            "accuracy": float((pred == y_dev).mean())}


@dataclass
class Trained:
    """One architecture trained on one set of labels, with its optional self-training round."""

    architecture: str
    model: Student
    history: TrainHistory  # of the round that was kept
    self_training: SelfTrainingReport


def train_student(spec, labels: list[str], arch: str, texts: Sequence[str], soft_labels: np.ndarray,
                  unlabeled: Sequence[str], dev_texts: Sequence[str], y_dev: np.ndarray,
                  checkpoint_dir: Path | None = None, on_epoch=None, device: str | None = None,
                  name: str | None = None, keep: bool | None = None) -> Trained:
    """Train one architecture (plus the dev-gated self-training round, or, with `keep`, the round as decided
    already: self_training.self_train); checkpoints are named `name` (default the architecture) and the round, so
    a killed run resumes the very training it was killed in."""
    cfg, train_cfg = student_configs(spec, labels, arch, device)
    histories: list[TrainHistory] = []

    def train(texts_, soft_):
        checkpoint = checkpoint_dir / f"{name or arch}-round{len(histories) + 1}.pt" if checkpoint_dir else None
        fit = trainer(arch, cfg, train_cfg, dev_texts, y_dev,
                      (lambda row: on_epoch(arch, row)) if on_epoch else None, checkpoint)
        model_, history_ = fit(texts_, soft_)
        histories.append(history_)
        return model_, history_

    model, history, report = self_train(train, texts, soft_labels, unlabeled if spec.self_training else [],
                                        spec.self_training_threshold, keep)
    return Trained(arch, model, history, report)


def train_and_select(spec, labels: list[str], texts: Sequence[str], soft_labels: np.ndarray,
                     unlabeled: Sequence[str], dev_texts: Sequence[str], y_dev: np.ndarray,
                     checkpoint_dir: Path | None = None, on_epoch=None, device: str | None = None,
                     trained: dict[str, Trained] | None = None) -> Selection:
    """Each architecture: train it (or take `trained[arch]`, already trained on these same rows), score on
    dev, time it; with `spec.light_fit`, each n-gram one trained again that way (listed after, so within
    dev's noise its own settings win). A taken student's curve is replayed to on_epoch so the run still logs it."""
    timing_texts = list(texts) or list(dev_texts)
    candidates = []
    for arch in spec.architectures:
        done = (trained or {}).get(arch)
        if done is None:
            done = train_student(spec, labels, arch, texts, soft_labels, unlabeled, dev_texts, y_dev,
                                 checkpoint_dir, on_epoch, device)
        elif on_epoch:
            replay(done, on_epoch)
        candidates.append(candidate_of(done, dev_texts, y_dev, timing_texts))
    for arch in light_fit_architectures(spec):
        done = train_student(light_fitted(spec, arch), labels, arch, texts, soft_labels, unlabeled, dev_texts, y_dev,
                             checkpoint_dir, (lambda a, row: on_epoch(f"{a}_light", row)) if on_epoch else None,
                             device, name=f"{arch}-light")
        candidates.append(candidate_of(done, dev_texts, y_dev, timing_texts, fit="light"))
    for arch in convex_fit_architectures(spec):
        done = train_student(fitted(spec, arch, CONVEX), labels, arch, texts, soft_labels, unlabeled, dev_texts,
                             y_dev, checkpoint_dir, None, device, name=f"{arch}-convex")
        candidates.append(candidate_of(done, dev_texts, y_dev, timing_texts, fit=CONVEX))
    return select(candidates, spec.objective, spec.min_throughput, y_dev, timing_texts)


def light_fit_architectures(spec) -> list[str]:
    """The n-gram architectures that are also trained with `light_fit` (none when it is null); one whose section
    already has light_fit's settings, or is fitted by `solver: lbfgs` (no learning rate or dropout), would only train
    the same student twice."""
    if spec.light_fit is None:
        return []
    light = spec.light_fit.model_dump()
    return [a for a in spec.architectures if a in NGRAM_ARCHITECTURES and getattr(spec, a).solver != "lbfgs"
            and getattr(spec, a).model_dump(include=set(light)) != light]


def light_fitted(spec, arch: str):
    """The SpecialistSpec with `arch`'s section trained by light_fit's settings."""
    return spec.model_copy(update={arch: getattr(spec, arch).model_copy(update=spec.light_fit.model_dump())})


def convex_fit_architectures(spec) -> list[str]:
    """The n-gram architectures also fitted as a logistic regression (`convex_fit`), unless their section is already."""
    return [a for a in spec.architectures if spec.convex_fit and a in NGRAM_ARCHITECTURES
            and getattr(spec, a).solver != "lbfgs"]


def fitted(spec, arch: str, fit: str):
    """The SpecialistSpec a candidate of `arch` with this `fit` was trained with (default, light or convex)."""
    if fit == "light":
        return light_fitted(spec, arch)
    if fit == CONVEX:
        return spec.model_copy(update={arch: getattr(spec, arch).model_copy(update={"solver": "lbfgs"})})
    return spec


def replay(done: Trained, on_epoch, key: str | None = None) -> None:
    """Log a student trained earlier (e.g. while choosing its teacher) as if it had been trained here."""
    for row in done.history.epochs:
        on_epoch(key or done.architecture, row)


# Seconds each candidate is timed for: enough to order architectures whose speeds differ several-fold (word vs
# char n-grams ~5x, n-gram vs encoder ~1000x) and to check min_throughput; the evaluation times the chosen one
# again for a second, beside the FM. A warm run spent ~1.6 s here timing two candidates for a second each.
CANDIDATE_TIMING_S = 0.25
# A candidate timed below min_throughput but within this factor of it is timed again, up to RETIMES more times, and
# keeps its best timing: a busy moment only slows a timing down, and one such moment would otherwise decide which
# architecture ships (ag_news's word+char student timed 27-40k texts per core-second beside another job, against its
# spec's 50k). Sustained load still slows every timing; this removes the flips a passing one causes.
RETIME_BAND = 2.0
RETIMES = 3


def candidate_of(done: Trained, dev_texts: Sequence[str], y_dev: np.ndarray, timing_texts: Sequence[str],
                 taught_by: str = "label_model", dev_pred: np.ndarray | None = None, fit: str = "default") -> Candidate:
    """A trained student scored on dev (its `dev_pred`, when already computed) and timed: what selection compares."""
    pred = done.model.predict_proba(dev_texts).argmax(axis=1) if dev_pred is None else dev_pred
    speed = measure_throughput(done.model, timing_texts, CANDIDATE_TIMING_S, cpu_time=True)  # per core-second
    return Candidate(done.architecture, done.model, done.history, done.self_training,
                     dev_scores(pred, y_dev, len(done.model.cfg.labels)), speed,
                     dev_pred=pred, taught_by=taught_by, fit=fit)


def choose_teacher(spec, task: str, label_names: list[str], candidates, labels_frame, splits,
                   dev_texts: Sequence[str], y_dev: np.ndarray, select_by: str, device: str | None = None,
                   prior: np.ndarray | None = None, checkpoint_dir: Path | None = None
                   ) -> tuple[object, dict[str, dict], dict[str, Trained]]:
    """The label model whose labels teach the best fast student on dev (select_by 'student': the student is
    what ships, and the label model that labels dev best need not teach best), else the best by its own dev
    score. Among students whose dev scores differ by less than dev's noise, the simplest label model is
    kept (fmops_pipelines.noisy_choice). Returns the chosen FittedLabelModel, each candidate's student dev
    score with its interval, and each candidate's n-gram student: trained on exactly the rows the
    specialist step would train it on, so the chosen one's is the specialist's n-gram candidate as it
    stands, not a proxy to train again."""
    from fmops_pipelines.noisy_choice import simplest_within_noise
    from fmops_pipelines.specialist.training_data import training_rows
    from fmops_pipelines.supervision.label_models import KINDS, labels_of

    if select_by != "student" or len(candidates.models) < 2:
        return candidates.best_by_dev(), {}, {}
    students = {kind: train_student(spec, label_names, "ngram",
                                    *training_rows(task, labels_of(labels_frame, kind), splits, label_names, prior),
                                    dev_texts, y_dev, checkpoint_dir, device=device, name=f"teacher-{kind}")
                for kind in candidates.kinds}
    predictions = {kind: t.model.predict_proba(dev_texts).argmax(axis=1) for kind, t in students.items()}
    chosen, scored = simplest_within_noise(y_dev, predictions, KINDS, len(label_names), spec.objective, spec.seed)
    return candidates.models[chosen], {kind: s.row() for kind, s in scored.items()}, students


def retimed_near_floor(candidate: Candidate, timing_texts: Sequence[str], min_throughput: float | None) -> None:
    """Time a candidate that fell short of `min_throughput` by less than RETIME_BAND again (RETIMES more times
    at most, stopping once one timing reaches it), keeping its best timing."""
    if min_throughput is None or candidate.model is None or len(timing_texts) == 0:
        return
    for _ in range(RETIMES):
        if not min_throughput / RETIME_BAND <= candidate.texts_per_s < min_throughput:
            return
        candidate.texts_per_s = max(candidate.texts_per_s, measure_throughput(
            candidate.model, timing_texts, CANDIDATE_TIMING_S, cpu_time=True))


def averaged_candidate(selection: Selection, dev_texts: Sequence[str], y_dev: np.ndarray,
                       timing_texts: Sequence[str], min_throughput: float | None) -> Candidate | None:
    """The chosen student's fellow n-gram candidates (same labels, fast enough) averaged into one student
    (averaging.py), calibrated and scored on dev and timed like any candidate; None where fewer than two can join
    or the average is slower than `min_throughput`. Dev's few hundred rows rank these students within their
    noise, and the one it keeps is often not the best on test (specialist.average)."""
    from fmops_pipelines.specialist.averaging import average, joinable, richest

    chosen = selection.chosen
    members = [c for c in selection.candidates if c.eligible and c.model is not None
               and c.architecture in NGRAM_ARCHITECTURES and c.taught_by == chosen.taught_by]
    if chosen not in members:
        return None
    students = joinable([c.model for c in members])
    if len(students) < 2:
        return None
    model = average(students)
    model.calibrate(dev_texts, y_dev)
    keys = [c.key for c in members if c.model in students]
    history = TrainHistory(best_epoch=chosen.history.best_epoch, best_dev_macro_f1=chosen.history.best_dev_macro_f1,
                           seconds=sum(c.history.seconds for c in members if c.model in students),
                           device=chosen.history.device)
    architecture = next(c.architecture for c in members if c.model is richest(students))  # whose features it has
    candidate = candidate_of(Trained(architecture, model, history, chosen.self_training), dev_texts, y_dev,
                             timing_texts, taught_by=chosen.taught_by, fit="averaged")
    retimed_near_floor(candidate, timing_texts, min_throughput)
    candidate.eligible = min_throughput is None or candidate.texts_per_s >= min_throughput
    candidate.averaged_from = keys
    return candidate if candidate.eligible else None


def select(candidates: list[Candidate], objective: str, min_throughput: float | None,
           y_dev: np.ndarray | None = None, timing_texts: Sequence[str] = ()) -> Selection:
    """The best on dev among those fast enough; given dev's labels (and the candidates' dev predictions), the
    fastest (simplest) one within dev's noise of the best (fmops_pipelines.noisy_choice), each one's
    interval recorded beside it. Two candidates of one architecture run at the same speed (their measured
    texts/s differ by timing noise only): both are as fast as the faster timing says, for `min_throughput` too
    (sms_spam's char students timed 37-62k texts/s per core-second on one busy day against its 50k, and their
    light fit dropped out of the average while the section's own fit stayed), and the one listed first (the label
    model's, which needs no encoder; the section's own fit before the light one) counts as the simpler. Given
    `timing_texts`, an architecture that falls just short is timed again first (retimed_near_floor)."""
    for architecture in dict.fromkeys(c.architecture for c in candidates):
        fastest = max((c for c in candidates if c.architecture == architecture and c.model is not None),
                      key=lambda c: c.texts_per_s, default=None)
        if fastest is not None:
            retimed_near_floor(fastest, timing_texts, min_throughput)
    speed = {}  # an architecture's speed: the best of its candidates' timings (a busy host only slows one down)
    for c in candidates:
        speed[c.architecture] = max(speed.get(c.architecture, 0.0), c.texts_per_s)
    for c in candidates:
        c.eligible = min_throughput is None or speed[c.architecture] >= min_throughput
    eligible = [c for c in candidates if c.eligible]
    if not eligible:
        return Selection(max(candidates, key=lambda c: c.texts_per_s), candidates, met_min_throughput=False)
    if y_dev is None or len(eligible) < 2 or any(c.dev_pred is None for c in eligible):
        return Selection(max(eligible, key=lambda c: (round(c.dev[objective], 4), c.texts_per_s)), candidates)
    from fmops_pipelines.noisy_choice import simplest_within_noise

    fastest_first = sorted(eligible, key=lambda c: -speed[c.architecture])  # stable: listed order within one
    predictions = {c.key: c.dev_pred for c in eligible}
    chosen, scored = simplest_within_noise(y_dev, predictions, [c.key for c in fastest_first],
                                           len(eligible[0].model.cfg.labels), objective)
    for c in eligible:
        c.noise = scored[c.key].row()
    return Selection(next(c for c in eligible if c.key == chosen), candidates)
