"""Labeling functions written from the FM's own labels: keyword rules mined on a fixed-size sample.

The FM labels a sample of train rows (a fixed number, whatever the data size); every word n-gram that
appears often in the sample and almost always under one FM label, more often than chance allows over
hundreds of phrases (a false-discovery-rate test), becomes a candidate rule "this phrase means <label>".
Dev's gold labels then decide: a candidate is kept only if, on dev, it fires often
enough and its precision both clears `min_precision` and halves the error of always guessing its label
(a ham rule at 0.9 precision tells nothing when 87 % of rows are ham). The kept phrases of a label form
one keyword labeling function (`fm_<label>`), so twenty correlated phrases cast one vote, not twenty,
and apply to every row with no further FM calls.

Why an n-gram miner and not a generative FM writing regexes: it works with every FM backend (an
embedding model cannot write), its rules are exact phrases a person can review, and each rule's
evidence (FM precision on the sample, dev precision and hits) is kept beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fmops_pipelines.votes import ABSTAIN

ORIGIN = "fm-mined"
# Words of two or more letters or digits: how phrases are mined, validated and matched (the task.yaml export
# matches them as whole words, which agrees on >98 % of rows: tests/unit/test_mined_lfs.py).
TOKEN_PATTERN = r"(?u)\b\w\w+\b"


@dataclass(frozen=True)
class MiningConfig:
    sample_size: int = 2000
    max_ngram: int = 2
    min_support: int = 5
    min_fm_precision: float = 0.8
    max_fdr: float = 0.05  # false discovery rate of the FM-side test over all phrases (Benjamini-Hochberg)
    min_dev_hits: int = 3
    min_precision: float = 0.8
    max_keywords_per_label: int = 25
    seed: int = 0

    @classmethod
    def from_spec(cls, spec) -> MiningConfig:
        """A TaskSpec's fm_rules settings (whether or not they are enabled), seeded like its splits."""
        return cls(**spec.fm_rules.model_dump(exclude={"enabled"}), seed=spec.splits.seed)


@dataclass(frozen=True)
class MinedRule:
    """One phrase and its evidence; `label` is a label name."""

    keyword: str
    label: str
    fm_support: int
    fm_precision: float
    dev_hits: int
    dev_precision: float


def majority_labels(votes: np.ndarray, k: int) -> np.ndarray:
    """The FM's label of each row: the plurality of its prompts' votes; ABSTAIN on no vote or a tie."""
    counts = np.stack([(votes == c).sum(axis=1) for c in range(k)], axis=1)
    best = counts.argmax(axis=1)
    top = counts.max(axis=1)
    tied = (counts == top[:, None]).sum(axis=1) > 1
    return np.where((top == 0) | tied, ABSTAIN, best)


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Positions of the mining sample: all rows when there are fewer than `size`."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _vectorizer(cfg: MiningConfig, min_df: int = 1, vocabulary: Sequence[str] | None = None):
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(lowercase=True, binary=True, token_pattern=TOKEN_PATTERN, ngram_range=(1, cfg.max_ngram),
                           min_df=min_df, vocabulary=vocabulary, dtype=np.int32)


def _presence(texts: Sequence[str], vocabulary: Sequence[str] | None, cfg: MiningConfig, min_df: int = 1):
    vec = _vectorizer(cfg, min_df, vocabulary)
    X = vec.fit_transform(list(texts)).tocsc()
    return X, list(vec.get_feature_names_out())


def mine_rules(sample_texts: Sequence[str], fm_labels: np.ndarray, dev_texts: Sequence[str], y_dev: np.ndarray,
               label_names: list[str], cfg: MiningConfig = MiningConfig()) -> tuple[list[MinedRule], pd.DataFrame]:
    """Kept rules, and the table of every candidate with its evidence and why it was kept or dropped."""
    k = len(label_names)
    fm_labels = np.asarray(fm_labels)
    labelled = fm_labels != ABSTAIN
    texts = [t for t, keep in zip(sample_texts, labelled) if keep]
    y_fm = fm_labels[labelled]
    empty = pd.DataFrame(columns=["keyword", "label", "fm_support", "fm_precision", "dev_hits", "dev_precision",
                                  "kept", "reason"])
    if len(texts) < cfg.min_support or not len(dev_texts):
        return [], empty
    try:
        X, vocab = _presence(texts, None, cfg, min_df=cfg.min_support)
    except ValueError:  # no n-gram reaches min_support
        return [], empty
    per_class = np.stack([np.asarray(X[y_fm == c].sum(axis=0)).ravel() for c in range(k)], axis=1)
    support = per_class.sum(axis=1)
    best = per_class.argmax(axis=1)
    fm_precision = per_class.max(axis=1) / np.maximum(support, 1)
    candidates = np.flatnonzero((fm_precision >= cfg.min_fm_precision)
                                & (_fm_significance(per_class, support, best, y_fm, k) <= cfg.max_fdr))
    if not len(candidates):
        return [], empty
    D, _ = _presence(dev_texts, [vocab[i] for i in candidates], cfg)
    y_dev = np.asarray(y_dev)
    prior = np.bincount(y_dev, minlength=k) / len(y_dev)
    rows = []
    for j, i in enumerate(candidates):
        c = int(best[i])
        hits = D[:, j].nonzero()[0]
        dev_precision = float((y_dev[hits] == c).mean()) if len(hits) else 0.0
        needed = max(cfg.min_precision, prior[c] + (1 - prior[c]) / 2)
        reason = ("too rare on dev" if len(hits) < cfg.min_dev_hits
                  else f"dev precision below {needed:.2f}" if dev_precision < needed else "")
        rows.append({"keyword": vocab[i], "label": label_names[c], "fm_support": int(support[i]),
                     "fm_precision": round(float(fm_precision[i]), 4), "dev_hits": len(hits),
                     "dev_precision": round(dev_precision, 4), "kept": not reason, "reason": reason})
    table = pd.DataFrame(rows).sort_values(["kept", "dev_precision", "dev_hits", "fm_support"],
                                           ascending=False, kind="stable").reset_index(drop=True)
    dropped = _drop_redundant(table[table["kept"]], cfg)
    for keyword, reason in dropped.items():
        table.loc[table["keyword"] == keyword, ["kept", "reason"]] = [False, reason]
    return kept_rules(table), table


def kept_rules(table: pd.DataFrame) -> list[MinedRule]:
    """The kept rows of a candidate table (as mine_rules makes it, or as stored in a matrix's attrs)."""
    if not len(table):
        return []
    fields = list(MinedRule.__dataclass_fields__)
    return [MinedRule(**{f: r[f] for f in fields}) for r in table[table["kept"]].to_dict("records")]


def _fm_significance(per_class: np.ndarray, support: np.ndarray, best: np.ndarray, y_fm: np.ndarray,
                     k: int) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values of "the FM gives this phrase's rows its label more often than it
    gives that label overall" (one-sided binomial), over every phrase: with hundreds of phrases, some reach
    high FM precision by chance on a few rows; an FM that labels at random yields no candidate."""
    from scipy.stats import binom, false_discovery_control

    share = np.bincount(y_fm, minlength=k) / len(y_fm)
    rows = np.arange(len(best))
    p = binom.sf(per_class[rows, best] - 1, support, share[best])
    return false_discovery_control(np.clip(p, 0.0, 1.0))


def _drop_redundant(kept: pd.DataFrame, cfg: MiningConfig) -> dict[str, str]:
    """Per label, in the table's order (best first): a phrase that contains a kept one adds nothing ("call
    now" beside "call": every row it matches, "call" matches too), and at most `max_keywords_per_label` stay.
    Returns the dropped phrases with the reason."""
    dropped: dict[str, str] = {}
    for _, group in kept.groupby("label", sort=False):
        chosen: list[str] = []
        for keyword in group["keyword"]:
            if any(_contains(keyword.split(), c.split()) for c in chosen):
                dropped[keyword] = "contains a kept phrase"
            elif len(chosen) == cfg.max_keywords_per_label:
                dropped[keyword] = f"beyond max_keywords_per_label ({cfg.max_keywords_per_label})"
            else:
                chosen.append(keyword)
    return dropped


def _contains(words: list[str], part: list[str]) -> bool:
    return any(words[i : i + len(part)] == part for i in range(len(words) - len(part) + 1))


def mine_from_votes(rows: pd.DataFrame, prompt_votes: np.ndarray, label_names: list[str],
                    cfg: MiningConfig) -> tuple[list[MinedRule], pd.DataFrame]:
    """Mine on a seeded sample of the train rows (columns id, text, split, label) using the prompts' votes
    on them as the FM's labels, and validate on the dev rows' gold labels."""
    split = rows["split"].to_numpy()
    train = np.flatnonzero(split == "train")
    sample = train[sample_rows(len(train), cfg.sample_size, cfg.seed)]
    dev = np.flatnonzero(split == "dev")
    index = {name: i for i, name in enumerate(label_names)}
    y_dev = rows["label"].to_numpy()[dev]
    known = np.array([y in index for y in y_dev], dtype=bool)
    texts = rows["text"].to_numpy()
    return mine_rules(texts[sample], majority_labels(np.asarray(prompt_votes)[sample], len(label_names)),
                      texts[dev][known], np.array([index[y] for y in y_dev[known]], dtype=np.int64), label_names, cfg)


def rules_by_label(rules: Sequence[MinedRule]) -> dict[str, list[MinedRule]]:
    out: dict[str, list[MinedRule]] = {}
    for r in rules:
        out.setdefault(r.label, []).append(r)
    return out


def labeling_functions(rules: Sequence[MinedRule]) -> list:
    """One keyword labeling function per label, named fm_<label>, origin fm-mined."""
    from fmops_pipelines.supervision.lfs import LabelingFunction

    longest = max((len(r.keyword.split()) for r in rules), default=1)
    analyzer = _vectorizer(MiningConfig(max_ngram=longest)).build_analyzer()
    return [LabelingFunction(f"fm_{label}", _matcher(analyzer, {r.keyword for r in group}), label, ORIGIN)
            for label, group in rules_by_label(rules).items()]


def _matcher(analyzer, keywords: set[str]):
    """Fires when the text has one of the phrases, tokenised exactly as they were mined and validated."""
    return lambda text: not keywords.isdisjoint(analyzer(text))


def as_task_yaml(rules: Sequence[MinedRule], task: str) -> str:
    """The rules as a `labeling_functions:` block for task.yaml, each phrase with its evidence, for review."""
    lines = [f"# Keyword rules mined from the FM's labels for task '{task}'. Review, edit, and paste under",
             "# labeling_functions: in task.yaml to keep them as your own rules (then set fm_rules.enabled: false",
             "# so they do not vote twice).",
             "labeling_functions:"]
    for label, group in rules_by_label(rules).items():
        lines += [f"  - name: mined_{_identifier(label)}", f"    label: {_yaml_str(label)}", "    keywords:"]
        lines += [f"      - {_yaml_str(r.keyword):<28} # dev {r.dev_precision:.2f} precision on {r.dev_hits} rows; "
                  f"FM {r.fm_precision:.2f} on {r.fm_support}" for r in group]
    return "\n".join(lines) + "\n"


def _identifier(label: str) -> str:
    import re

    return re.sub(r"\W", "_", label)


def _yaml_str(value: str) -> str:
    import json

    return json.dumps(value)  # a JSON string is a valid YAML scalar whatever it contains
