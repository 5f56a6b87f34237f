"""Average n-gram students trained on the same labels into one student that serves as one.

In eval mode an n-gram student is linear in its features: logits = features @ (bag @ head.W^T) + head.b. A word
student's features are the word+char student's word block scaled by sqrt(2) (the char featuriser normalises each
family to 1/sqrt(2)), so the mean of the students' logits is itself an n-gram student over the richest featuriser
among them: one table of n_classes columns over the rows any of them holds (narrower than a 16-wide bag, so it
serves faster than the richest student did), an identity head, the mean bias. The logits are averaged as trained, before each student's
temperature: a temperature fitted on a few hundred dev rows that a student separates perfectly sits at the grid's
floor (0.01) and would let that one student outvote the rest; the average is calibrated on dev afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from functools import reduce

import numpy as np
import torch

from fmops_pipelines.specialist.ngram import CompactTable, NgramConfig, NgramNet, NgramSpecialist
from fmops_pipelines.specialist.ngram_features import Featurizer

# two students share their word features only if these match
WORDS = ("labels", "word_ngrams", "hash_bits", "word_hashing")


def word_scale(cfg: NgramConfig, target: NgramConfig) -> float | None:
    """x such that a student's features are x times the target featuriser's (on its word block), or None when they
    are not features of the same space (IDF-weighted features are not: each student has its own weights)."""
    if cfg.idf or target.idf or any(getattr(cfg, k) != getattr(target, k) for k in WORDS):
        return None
    if cfg.char_ngrams is None and target.char_ngrams is None:
        return 1.0
    if (cfg.char_ngrams, cfg.char_hashing, cfg.family_norm) == (target.char_ngrams, target.char_hashing,
                                                                target.family_norm):
        return 1.0
    if cfg.char_ngrams is None and target.family_norm == "each":
        return math.sqrt(2)
    return None


def richest(students: Sequence[NgramSpecialist]) -> NgramSpecialist:
    """The student with the most features (word+char over word only), IDF-weighted ones last (they join no
    average): the space the others are expressed in."""
    return max(students, key=lambda s: (not s.cfg.idf, s.featurizer.n_features))


def joinable(students: Sequence[NgramSpecialist]) -> list[NgramSpecialist]:
    """The students whose features are (a scaling of) the richest one's."""
    target = richest(students).cfg
    return [s for s in students if word_scale(s.cfg, target) is not None]


def joins(cfgs: Sequence[NgramConfig]) -> bool:
    """Whether students of these configurations, yet to be trained, could be averaged into one."""
    target = max(cfgs, key=lambda c: (not c.idf, Featurizer(c).n_features))
    return len(cfgs) > 1 and all(word_scale(c, target) is not None for c in cfgs)


def held_rows(student: NgramSpecialist) -> np.ndarray:
    """The featuriser rows the student's table holds (all of them for a model saved before compact tables)."""
    return student.table.rows if student.table is not None else np.arange(student.featurizer.n_features)


def logit_table(student: NgramSpecialist, target: NgramConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, table, bias): the student's logits as target-features[:, rows] @ table + bias. A word student's rows
    are the word block's, which comes first in a word+char space."""
    scale = word_scale(student.cfg, target)
    if scale is None:
        raise ValueError(f"a {student.cfg.architecture} student's features are not a {target.architecture} "
                         "student's: they cannot be averaged")
    state = student.net.state_dict()
    bag, weight, bias = (state[k].detach().float().cpu() for k in ("bag.weight", "head.weight", "head.bias"))
    return held_rows(student), (bag @ weight.T).numpy() * scale, bias.numpy()


def average(students: Sequence[NgramSpecialist]) -> NgramSpecialist:
    """One student whose logits are the mean of `students`' (as trained), over the richest featuriser among them
    and the rows any of them holds; temperature 1 (calibrate it), `cfg.averaged` = how many students."""
    target = richest(students)
    tables = [logit_table(s, target.cfg) for s in students]
    rows = reduce(np.union1d, [r for r, _, _ in tables])
    k = tables[0][1].shape[1]
    table = np.zeros((len(rows), k), dtype=np.float32)
    for held, t, _ in tables:
        table[np.searchsorted(rows, held)] += t / len(tables)
    bias = np.mean([b for _, _, b in tables], axis=0, dtype=np.float32)
    cfg = replace(target.cfg, embed_dim=k, dropout=0.0, temperature=1.0, averaged=len(students))
    with torch.device("meta"):  # the weights are set below: none are drawn
        net = NgramNet(len(rows), k, k, 0.0, draw=False)
    net.load_state_dict({"bag.weight": torch.from_numpy(table), "head.weight": torch.eye(k),
                         "head.bias": torch.from_numpy(bias)}, assign=True)
    whole = len(rows) == target.featurizer.n_features
    return NgramSpecialist(cfg, net=net.to(target.device), device=target.device,
                           table=None if whole else CompactTable(rows))
