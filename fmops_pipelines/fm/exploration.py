"""Prompt exploration: score every candidate prompt on dev, calibrate it, keep a diverse useful subset.

Zero-shot similarity scores are biased towards whichever label prompt sits closest to "typical" text,
so each prompt is contextually calibrated (Zhao et al., 2021): its mean score per label over the
unlabeled pool is subtracted. A temperature fit on dev turns scores into probabilities, and an abstain
threshold on dev lets a prompt vote only where it is confident: weak labelers that abstain are what
label models are built for.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from fmops_pipelines.fm.base import FoundationModel, Prompt
from fmops_pipelines.probability import fit_temperature, softmax
from fmops_pipelines.votes import ABSTAIN

_TEMPERATURES = np.logspace(-3, 0.5, 36)
_COVERAGES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


@dataclass(frozen=True)
class CalibratedPrompt:
    """A prompt plus what dev taught us about it: centering, temperature, abstain threshold."""

    prompt: Prompt
    center: tuple[float, ...]
    temperature: float
    threshold: float

    def proba(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities; a row the FM could not answer (NaN) is uniform."""
        unanswered = np.isnan(scores).any(axis=1)
        p = softmax(np.nan_to_num((scores - np.asarray(self.center)) / self.temperature))
        p[unanswered] = 1.0 / scores.shape[1]
        return p

    def votes(self, scores: np.ndarray) -> np.ndarray:
        """Label index where confident, ABSTAIN elsewhere (and wherever the FM gave no answer)."""
        p = self.proba(scores)
        confident = (p.max(axis=1) >= self.threshold) & ~np.isnan(scores).any(axis=1)
        return np.where(confident, p.argmax(axis=1), ABSTAIN)

    def to_record(self) -> dict:
        return {"prompt_id": self.prompt.id, "template": self.prompt.template,
                "verbalizers": list(self.prompt.verbalizers), "examples": [list(e) for e in self.prompt.examples],
                "center": list(self.center), "temperature": self.temperature, "threshold": self.threshold}

    @classmethod
    def from_record(cls, rec: dict) -> CalibratedPrompt:
        raw = rec.get("examples")  # parquet gives arrays back; prompts without shots have none
        examples = tuple(tuple(str(t) for t in e) for e in raw) if raw is not None and len(raw) else ()
        return cls(Prompt(rec["template"], tuple(rec["verbalizers"]), examples),
                   tuple(float(c) for c in rec["center"]), float(rec["temperature"]), float(rec["threshold"]))


def verbalizer_sets(verbalizers: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    """The i-th set takes each label's i-th phrase (cycling lists that are shorter)."""
    width = max(len(v) for v in verbalizers)
    return [tuple(v[i % len(v)] for v in verbalizers) for i in range(width)]


def candidate_prompts(templates: Sequence[str], verbalizers: Sequence[Sequence[str]]) -> list[Prompt]:
    """Templates x verbalizer sets (embedding backend: the phrases fill the template's {label} slot)."""
    return [Prompt(t, s) for t, s in itertools.product(templates, verbalizer_sets(verbalizers))]


def ama_reformulations(verbalizer_set: Sequence[str]) -> list[str]:
    """Ask-Me-Anything-style rewrites of the task as open questions (Arora et al., 2022), one per frame."""
    options = [v.strip() for v in verbalizer_set]
    either = ", ".join(options[:-1]) + " or " + options[-1]
    return [f"Text: {{text}}\nQuestion: Which describes the text best: {' / '.join(options)}?\nAnswer:",
            f"{{text}}\n\nQuestion: Is the text above {either}?\nAnswer: It is",
            "Read the text and say what it is.\nText: {text}\nIt is"]


def generative_candidates(templates: Sequence[str], verbalizers: Sequence[Sequence[str]],
                          reformulations: bool = True) -> list[Prompt]:
    """Generative backends: templates x verbalizer sets, plus AMA question reformulations of each set.

    Verbalizers get a leading space: after "Answer:" the next token of natural text starts with one.
    """
    out = []
    for vset in verbalizer_sets(verbalizers):
        answers = tuple(" " + v.strip() for v in vset)
        frames = list(templates) + (ama_reformulations(vset) if reformulations else [])
        out += [Prompt(t, answers) for t in frames]
    return out


CALIBRATION_POOL = 2000  # unlabelled rows whose mean score is subtracted (contextual calibration)


def candidates_for(spec) -> list[Prompt]:
    """The spec's candidate prompts for its backend."""
    verbalizers = [label.verbalizers for label in spec.labels]
    if spec.fm.backend == "embedding":
        return candidate_prompts(spec.prompts.templates, verbalizers)
    return generative_candidates(spec.prompts.templates, verbalizers, spec.prompts.reformulations)


def _pick_threshold(conf: np.ndarray, pred: np.ndarray, y: np.ndarray, min_coverage: float) -> float:
    """The confidence cut that maximises macro-F1 on the dev rows it still covers (coverage >= min)."""
    best = (-1.0, 0.0)
    for cov in _COVERAGES:
        if cov < min_coverage - 1e-9:
            break
        thr = 0.0 if cov >= 1.0 else float(np.quantile(conf, 1.0 - cov))
        covered = conf >= thr
        if covered.sum() == 0:
            continue
        f1 = f1_score(y[covered], pred[covered], average="macro", labels=np.unique(y), zero_division=0)
        if f1 > best[0] + 1e-3:  # prefer more coverage unless precision really improves
            best = (f1, thr)
    return best[1]


def calibrate(prompt: Prompt, pool_scores: np.ndarray, dev_scores: np.ndarray, y_dev: np.ndarray,
              min_coverage: float) -> CalibratedPrompt:
    """Centre on the unlabeled pool, fit temperature and abstain threshold on dev (unanswered rows skipped).

    Centring removes a zero-shot prompt's per-label bias (one label prompt is closer to every text), and
    assumes the labels about equally frequent in the pool. A few-shot labeler has no such bias to remove (it
    was fitted on gold examples), and on imbalanced data centring undoes what it learned: sms_spam's
    centroid labeler, held-out test macro-F1 0.830 uncentred, 0.675 centred (the probe 0.929 and 0.667);
    balanced youtube_spam and ag_news move by 0.000-0.004. So few-shot labelers are not centred."""
    answered_pool = ~np.isnan(pool_scores).any(axis=1)
    center = (pool_scores[answered_pool].mean(axis=0) if answered_pool.any() and not prompt.examples
              else np.zeros(pool_scores.shape[1]))
    answered = ~np.isnan(dev_scores).any(axis=1)
    if not answered.any():
        return CalibratedPrompt(prompt, tuple(float(c) for c in center), 1.0, 1.1)  # never votes
    z, y = dev_scores[answered] - center, y_dev[answered]
    temperature = fit_temperature(z, y, _TEMPERATURES)
    p = softmax(z / temperature)
    threshold = _pick_threshold(p.max(axis=1), p.argmax(axis=1), y, min_coverage * answered.mean())
    return CalibratedPrompt(prompt, tuple(float(c) for c in center), temperature, threshold)


def dev_report(cal: CalibratedPrompt, dev_scores: np.ndarray, y_dev: np.ndarray, label_names: list[str]) -> dict:
    """How a calibrated prompt does on dev, without abstaining and at its abstain threshold."""
    pred = np.where(np.isnan(dev_scores).any(axis=1), ABSTAIN, cal.proba(dev_scores).argmax(axis=1))
    votes = cal.votes(dev_scores)
    covered = votes != ABSTAIN
    row = {
        "dev_accuracy": float((pred == y_dev).mean()),
        "dev_macro_f1": float(f1_score(y_dev, pred, average="macro", labels=range(len(label_names)), zero_division=0)),
        "coverage": float(covered.mean()),
        "covered_accuracy": float((votes[covered] == y_dev[covered]).mean()) if covered.any() else 0.0,
    }
    for k, name in enumerate(label_names):
        mask = y_dev == k
        row[f"recall_{name}"] = float((pred[mask] == k).mean()) if mask.any() else float("nan")
    return row


def select_diverse(dev_preds: dict[str, np.ndarray], ranking: list[str], max_labelers: int,
                   max_agreement: float = 0.97) -> list[str]:
    """Greedy by dev score, skipping prompts that agree with an already chosen one almost everywhere."""
    chosen: list[str] = []
    for pid in ranking:
        if all((dev_preds[pid] == dev_preds[c]).mean() < max_agreement for c in chosen):
            chosen.append(pid)
        if len(chosen) == max_labelers:
            break
    return chosen


FEW_SHOT_TEMPLATE = "few-shot: nearest centroid of the dev examples of each label"
PROBE_TEMPLATE = "few-shot: a linear probe on the embeddings of the dev examples"
FEW_SHOT_TEMPLATES = {"centroid": FEW_SHOT_TEMPLATE, "probe": PROBE_TEMPLATE}
FOLDS = {"centroid": 2, "probe": 5}  # a probe learns more from more of dev: up to 5 folds, as the rarest label allows


def few_shot_kind(prompt: Prompt) -> str | None:
    """'centroid' or 'probe' for a few-shot labeler (its template says which), None for a prompt."""
    return next((kind for kind, t in FEW_SHOT_TEMPLATES.items() if t == prompt.template), None) if prompt.examples \
        else None


def few_shot_prompt(texts: Sequence[str], y: np.ndarray, label_names: list[str], kind: str = "centroid") -> Prompt:
    """The FM 'prompted' with gold examples: each label is the centroid of its example texts, or (kind
    'probe') a linear probe is fitted on their embeddings (fm/probe.py)."""
    return Prompt(FEW_SHOT_TEMPLATES[kind], tuple(label_names),
                  tuple(tuple(t for t, c in zip(texts, y) if c == k) for k in range(len(label_names))))


def few_shot_dev_scores(fm: FoundationModel, dev_texts: Sequence[str], y_dev: np.ndarray,
                        label_names: list[str], kind: str = "centroid") -> np.ndarray:
    """Out-of-fold dev scores: each dev row is scored by a labeler built without it (cross-fitting), so the
    few-shot labeler's dev accuracy, temperature and threshold are not fitted on its own examples."""
    folds = int(np.clip(np.bincount(y_dev, minlength=len(label_names)).min(), 2, FOLDS[kind]))
    fold = np.empty(len(y_dev), dtype=int)
    for k in range(len(label_names)):  # stratified round-robin folds
        members = np.flatnonzero(y_dev == k)
        fold[members] = np.arange(len(members)) % folds
    texts = np.asarray(list(dev_texts), dtype=object)
    scores = np.full((len(y_dev), len(label_names)), np.nan, dtype=np.float32)
    for f in range(folds):
        train, held = fold != f, fold == f
        if all((y_dev[train] == k).any() for k in range(len(label_names))):
            scores[held] = fm.score(list(texts[held]), few_shot_prompt(list(texts[train]), y_dev[train], label_names,
                                                                       kind))
    return scores


def explore_prompts(fm: FoundationModel, prompts: list[Prompt], pool_texts: Sequence[str],
                    dev_texts: Sequence[str], y_dev: np.ndarray, label_names: list[str],
                    max_labelers: int, min_coverage: float, few_shot: bool = False,
                    anchor: bool = False, few_shot_labeler: str = "centroid") -> pd.DataFrame:
    """One row per candidate: its text, calibration, dev scores, and whether it became a labeler.

    With few_shot, one more candidate: the FM with the dev examples as shots (`few_shot_labeler`: their
    centroids, or a linear probe), scored out-of-fold on dev.
    With anchor, the best labeler on dev votes on every row (no abstain threshold), so a row every
    precise labeler abstains on gets the FM's best guess from the label model instead of the class prior.
    """
    rows, dev_preds, calibrated = [], {}, {}
    if few_shot:
        prompts = [*prompts, few_shot_prompt(dev_texts, y_dev, label_names, few_shot_labeler)]
    for prompt in prompts:
        dev_scores = (few_shot_dev_scores(fm, dev_texts, y_dev, label_names, few_shot_kind(prompt))
                      if prompt.examples else fm.score(dev_texts, prompt))
        cal = calibrate(prompt, fm.score(pool_texts, prompt), dev_scores, y_dev, min_coverage)
        dev_preds[prompt.id] = cal.proba(dev_scores).argmax(axis=1)
        calibrated[prompt.id] = (cal, dev_scores)
        rows.append({**cal.to_record(), **dev_report(cal, dev_scores, y_dev, label_names)})
    table = pd.DataFrame(rows).drop_duplicates("prompt_id").sort_values(
        ["dev_macro_f1", "dev_accuracy"], ascending=False).reset_index(drop=True)
    chosen = select_diverse(dev_preds, list(table["prompt_id"]), max_labelers)
    if anchor and chosen:
        cal, dev_scores = calibrated[chosen[0]]
        full = CalibratedPrompt(cal.prompt, cal.center, cal.temperature, 0.0)
        i = table.index[table["prompt_id"] == chosen[0]][0]
        for key, value in {"threshold": 0.0, **dev_report(full, dev_scores, y_dev, label_names)}.items():
            table.at[i, key] = value
    table["anchor"] = table["prompt_id"].eq(chosen[0]) & anchor if chosen else False
    table["selected"] = table["prompt_id"].isin(chosen)
    table["rank"] = np.arange(1, len(table) + 1)
    return table


def anchor_ids(table: pd.DataFrame) -> list[str]:
    """The selected prompts that vote on every row (the `anchor` of explore_prompts)."""
    return table.loc[table.get("anchor", False) & table["selected"], "prompt_id"].tolist()


def calibrated_prompts(table: pd.DataFrame, selected_only: bool = True) -> list[CalibratedPrompt]:
    rows = table[table["selected"]] if selected_only else table
    return [CalibratedPrompt.from_record(r) for r in rows.to_dict("records")]
