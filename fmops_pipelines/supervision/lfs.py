"""Labeling functions: the user's own rules beside the FM prompts, each voting one label or abstaining.

Declared in task.yaml (keyword and regex rules) or written as Python in assets/<task>/*.py:

    from fmops_pipelines.supervision.lfs import labeling_function

    @labeling_function(label="spam")
    def mentions_free_prize(text: str) -> bool:
        return "free" in text.lower() and "prize" in text.lower()

A function returns True to vote its label and False or None to abstain; or, with no `label=`, it
returns a label name (or None) itself. A function that raises is reported with its name and the row.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fmops_pipelines.errors import FmopsError, SpecError
from fmops_pipelines.votes import ABSTAIN

_MARK = "__fmops_labeling_function__"


class LabelingFunctionError(FmopsError):
    """A labeling function raised or returned something that is not a label; names the function and row."""


@dataclass(frozen=True)
class LabelingFunction:
    name: str
    fn: Callable[[str], object]
    label: str | None = None  # fixed label (fn returns a bool) or None (fn returns a label name)
    source: str = ""

    @property
    def column(self) -> str:
        return f"lf_{self.name}"

    def vote(self, text: str, index: dict[str, int]) -> int:
        out = self.fn(text)
        if self.label is not None:
            return index[self.label] if out else ABSTAIN
        if out is None:
            return ABSTAIN
        if out not in index:
            raise ValueError(f"returned {out!r}, which is not one of {list(index)}")
        return index[out]


def labeling_function(label: str | None = None, name: str | None = None):
    """Mark a function in assets/<task>/*.py as a labeling function."""

    def mark(fn: Callable) -> Callable:
        setattr(fn, _MARK, {"label": label, "name": name or fn.__name__})
        return fn

    return mark


def keyword_lf(name: str, label: str, keywords: list[str]) -> LabelingFunction:
    """Votes `label` when any keyword appears as a whole word or phrase (case-insensitive)."""
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(k) for k in keywords) + r")\b", re.IGNORECASE)
    return LabelingFunction(name, lambda text: pattern.search(text) is not None, label, "keywords")


def regex_lf(name: str, label: str, regex: str) -> LabelingFunction:
    pattern = re.compile(regex, re.IGNORECASE)
    return LabelingFunction(name, lambda text: pattern.search(text) is not None, label, "regex")


def load_python_lfs(folder: Path) -> list[LabelingFunction]:
    """Every marked function in the task folder's *.py files, in file then definition order."""
    found = []
    for path in sorted(folder.glob("*.py")):
        module_name = f"fmops_task_lfs.{folder.name}.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        try:
            sys.modules[module_name] = module
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 (user code: report where, not a traceback)
            raise SpecError(f"{path}: cannot import labeling functions: {type(exc).__name__}: {exc}") from None
        for obj in vars(module).values():
            meta = getattr(obj, _MARK, None)
            if meta is not None:
                found.append(LabelingFunction(meta["name"], obj, meta["label"], str(path)))
    return found


def apply_lfs(lfs: list[LabelingFunction], rows: pd.DataFrame, label_names: list[str]) -> pd.DataFrame:
    """One int8 vote column per labeling function over rows (id, text)."""
    index = {name: i for i, name in enumerate(label_names)}
    out = {}
    for lf in lfs:
        votes = np.empty(len(rows), dtype=np.int8)
        for i, (row_id, text) in enumerate(zip(rows["id"], rows["text"])):
            try:
                votes[i] = lf.vote(text, index)
            except Exception as exc:  # noqa: BLE001
                raise LabelingFunctionError(
                    f"labeling function '{lf.name}' ({lf.source}) failed on row id={row_id}: "
                    f"{type(exc).__name__}: {exc}") from None
        out[lf.column] = votes
    return pd.DataFrame(out, index=rows.index)


def task_lfs(spec) -> list[LabelingFunction]:
    """The task's labeling functions: keyword / regex rules from task.yaml, then its Python files."""
    declared = [keyword_lf(lf.name, lf.label, lf.keywords) if lf.keywords else regex_lf(lf.name, lf.label, lf.regex)
                for lf in spec.labeling_functions]
    python = load_python_lfs(spec.root)
    lfs = declared + python
    names = [lf.name for lf in lfs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{spec.root / 'task.yaml'}: labeling_functions: duplicate names {dupes}")
    reserved = [lf for lf in python if lf.name.startswith("fm_")]  # task.yaml names: checked by the spec
    if reserved:
        raise SpecError(f"{reserved[0].source}: labeling function '{reserved[0].name}': the prefix 'fm_' is kept for "
                        "the rules fmops mines from the FM (fm_rules); rename it")
    unknown = [lf for lf in lfs if lf.label is not None and lf.label not in spec.label_names]
    if unknown:
        raise SpecError(f"{unknown[0].source}: labeling function '{unknown[0].name}': label '{unknown[0].label}' "
                        f"is not one of {spec.label_names}")
    return lfs
