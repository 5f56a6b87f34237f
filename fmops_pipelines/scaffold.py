"""`fmops init`: a task spec drafted from a user's own data file, so the first run needs no YAML written by hand.

It reads the file once, finds the text, label, id and split columns (or takes them as given), counts the
labels, and writes a commented `assets/<task>/task.yaml` that runs as it is: verbalizers drafted from the label
names, splits sized to the labelled rows there are, and the few fields a person should look at first marked.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fmops_pipelines.errors import DataError, SpecError

TEXT_NAMES = ("text", "content", "message", "body", "comment", "review", "sentence", "document", "utterance",
              "tweet", "query", "description", "title")
LABEL_NAMES = ("label", "labels", "class", "category", "target", "intent", "sentiment", "topic", "y", "tag")
ID_NAMES = ("id", "uid", "uuid", "key", "row_id", "doc_id")
SPLIT_NAMES = ("split", "fold", "set", "subset", "partition")
MAX_LABELS = 50
MIN_LABELLED = 40  # dev (>= 10 rows), test and 10 to spare: what the splits stage needs at the least
FEW_PER_LABEL = 4  # a label with fewer labelled rows may leave under 2 in gold once test has its share: no gold
# teacher then (gold is cross-fitted, data.splits.gold_folds); `fmops init` says so


@dataclass
class Inspection:
    """What init found in the file: the columns it will name in the spec and the labels with their counts."""

    path: Path
    rows: int
    text_column: str
    label_column: str | None
    id_column: str | None
    split_column: str | None
    label_counts: dict[str, int] = field(default_factory=dict)  # every label, in the spec's order
    unlabelled: int = 0
    gold: Path | None = None  # a separate file of labelled rows (dataset.gold_files)

    @property
    def labelled(self) -> int:
        return sum(self.label_counts.values())


def _named(columns: list[str], names: tuple[str, ...]) -> str | None:
    by_lower = {c.lower(): c for c in columns}
    return next((by_lower[n] for n in names if n in by_lower), None)


def _strings(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].astype("string").str.strip().replace("", pd.NA)


def _given(frame: pd.DataFrame, path: Path, column: str | None, option: str) -> str | None:
    if column is not None and column not in frame.columns:
        raise DataError(f"{path}: no column '{column}' ({option}); columns are {list(frame.columns)}")
    return column


def _find_text(frame: pd.DataFrame, path: Path, taken: set[str]) -> str:
    columns = [c for c in frame.columns if c not in taken]
    named = _named(columns, TEXT_NAMES)
    if named is not None:
        return named
    lengths = {c: _strings(frame, c).str.len().mean() for c in columns
               if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])}
    long_enough = {c: n for c, n in lengths.items() if pd.notna(n) and n >= 15}
    if not long_enough:
        raise DataError(f"{path}: no text column found (none is named like {TEXT_NAMES[:4]} or holds sentences); "
                        f"name it with --text-column (columns are {list(frame.columns)})")
    return max(long_enough, key=long_enough.get)


def _find_label(frame: pd.DataFrame, taken: set[str]) -> str | None:
    columns = [c for c in frame.columns if c not in taken]

    def categorical(c: str) -> bool:
        values = _strings(frame, c).dropna()
        return 2 <= values.nunique() <= MAX_LABELS and values.nunique() <= max(2, 0.2 * len(values))

    named = _named(columns, LABEL_NAMES)
    if named is not None:
        return named
    candidates = [c for c in columns if categorical(c)]
    return candidates[0] if len(candidates) == 1 else None


def _find_id(frame: pd.DataFrame, taken: set[str]) -> str | None:
    columns = [c for c in frame.columns if c not in taken]
    named = _named(columns, ID_NAMES) or next((c for c in columns if c.lower().endswith("_id")), None)
    if named is not None and frame[named].astype("string").is_unique and frame[named].notna().all():
        return named
    return None


def _find_split(frame: pd.DataFrame, taken: set[str]) -> str | None:
    from fmops_pipelines.data.readers import DECLARED_SPLITS, declared_split_values

    named = _named([c for c in frame.columns if c not in taken], SPLIT_NAMES)
    if named is None:
        return None
    values = set(declared_split_values(_strings(frame, named)).dropna())
    return named if "test" in values and values <= set(DECLARED_SPLITS) else None


def _read(path: Path) -> pd.DataFrame:
    from fmops_pipelines.data.readers import read_table

    frame = read_table(path)
    if frame.empty:
        raise DataError(f"{path}: no rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def inspect(path: Path, text_column: str | None = None, label_column: str | None = None,
            id_column: str | None = None, split_column: str | None = None,
            labels: list[str] | None = None, gold: Path | None = None) -> Inspection:
    """The columns and labels of a data file (and of a separate file of labelled rows, `gold`); a DataError (one
    line, naming the file) when they cannot make a task."""
    frame = _read(path)
    gold_frame = _read(gold) if gold is not None else None
    labelled, where = (gold_frame, gold) if gold_frame is not None else (frame, path)
    given = {c for c in (_given(frame, path, text_column, "--text-column"),
                         _given(labelled, where, label_column, "--label-column"),
                         _given(frame, path, id_column, "--id-column"),
                         _given(frame, path, split_column, "--split-column")) if c}
    text = text_column or _find_text(frame, path, given)
    label = label_column or _find_label(labelled, given | {text})
    if gold_frame is not None and text not in gold_frame.columns:
        raise DataError(f"{gold}: no column '{text}', the text column of {path} (the files share their columns)")
    # ids and declared splits are read from the data file alone: with a gold file, only where given
    ident = id_column or (None if gold_frame is not None else _find_id(frame, given | {text, label}))
    split = split_column or (None if gold_frame is not None else _find_split(frame, given | {text, label, ident}))
    if label is None:
        raise DataError(f"{where}: no label column found; fmops needs some labelled rows (at least {MIN_LABELLED}) "
                        f"for its dev and test splits: name the column with --label-column (columns are "
                        f"{list(labelled.columns)})")
    pool = _strings(frame, label) if label in frame.columns else pd.Series(pd.NA, index=frame.index, dtype="string")
    values = pd.concat([pool, _strings(gold_frame, label)]) if gold_frame is not None else pool
    data_path, path = path, where  # errors about the labels name the file that holds them
    counts = values.value_counts()
    if counts.sum() < MIN_LABELLED:
        raise DataError(f"{path}: only {counts.sum()} labelled rows in column '{label}'; fmops needs at least "
                        f"{MIN_LABELLED} for its dev and test splits")
    if labels:
        unknown = counts.index.difference(labels)
        if len(unknown):
            sources = [(gold, _strings(gold_frame, label))] if gold_frame is not None else []
            file, rows = next((f, v) for f, v in [*sources, (data_path, pool)] if (v == unknown[0]).any())
            row = int((rows == unknown[0]).fillna(False).to_numpy().argmax())
            raise DataError(f"{file}: row {row + 2 if file.suffix.lower() in ('.csv', '.tsv') else row}: label "
                            f"'{unknown[0]}' in column '{label}' is not one of --labels {labels}")
        label_counts = {name: int(counts.get(name, 0)) for name in labels}
    else:
        label_counts = {str(name): int(n) for name, n in counts.sort_index().items()}
    if len(label_counts) < 2:
        raise DataError(f"{path}: column '{label}' holds {len(label_counts)} label(s) {list(label_counts)}; a task "
                        f"needs at least two (or list them with --labels a,b,c)")
    if len(label_counts) > MAX_LABELS:
        raise DataError(f"{path}: column '{label}' holds {len(label_counts)} distinct values: not a label column "
                        f"(at most {MAX_LABELS} labels); name the right one with --label-column")
    return Inspection(data_path, len(frame), text, label, ident, split, label_counts, int(pool.isna().sum()), gold)


def humanize(label: str) -> str:
    """'billing_issue' / 'BillingIssue' / 'billing-issue' -> 'billing issue'."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(label))
    return re.sub(r"[\s_\-./]+", " ", spaced).strip().lower() or str(label)


def gold_cap(found: Inspection, test_fraction: float) -> int | None:
    """None (every labelled row outside test is gold) when the file has unlabelled rows for the student to learn
    from; for a fully labelled file, half the labelled rows outside test, so the other half is an unlabelled pool."""
    if found.unlabelled:
        return None
    return max(10, int(found.labelled * (1 - test_fraction)) // 2)


def render(task: str, found: Inspection, spec_dir: Path) -> str:
    """The commented task.yaml for what `inspect` found."""
    data = os.path.relpath(found.path.resolve(), spec_dir.resolve())
    test_fraction = 0.2
    lines = [
        f"# {task}: drafted by `fmops init` from {found.path.name} ({found.rows:,} rows, {found.labelled:,} labelled).",
        "# Look at the fields marked LOOK first; every other field has a default: docs/spec_reference.md.",
        f"description: Classify {found.text_column} into {', '.join(found.label_counts)}.",
        "dataset:",
        f"  path: {_quote(data)}  # relative to this folder",
        f"  text_column: {_quote(found.text_column)}",
        f"  label_column: {_quote(found.label_column)}  # an empty cell is an unlabelled row",
    ]
    if found.id_column:
        lines.append(f"  id_column: {_quote(found.id_column)}")
    if found.gold:
        gold = os.path.relpath(found.gold.resolve(), spec_dir.resolve())
        lines.append(f"  gold_files: [{_quote(gold)}]  # labelled rows: dev and test are drawn from them")
    if found.split_column:
        lines.append(f"  split_column: {_quote(found.split_column)}  # its test rows are the held-out test split")
    lines += ["# LOOK: each label's verbalizers are what the foundation model compares texts with; a few",
              "# phrases a text of that label would contain work better than the bare name.",
              "labels:"]
    for name, count in found.label_counts.items():
        words = humanize(name)
        lines += [f"  - name: {_quote(name)}  # {count:,} labelled rows",
                  f"    verbalizers: [{_quote(words)}, {_quote(f'a text about {words}')}]"]
    cap = gold_cap(found, test_fraction)
    lines += [(f"splits:  # every labelled row outside test ({test_fraction:.0%} of them, held out) is gold: it "
               "teaches and chooses"),
              f"  dev_size: {cap}  # cap: the file has no unlabelled rows, so the rest of its labels become the pool"
              if cap else "  # dev_size: 200  # a cap on gold rows (the rest lose their labels); unset: all of them",
              f"  test_fraction: {test_fraction}",
              "  seed: 0",
              "prompts:  # LOOK: templates around each verbalizer; the best ones on dev vote",
              "  templates:",
              '    - "{label}"',
              '    - "This text is {label}."',
              "  max_labelers: 8",
              "  min_coverage: 0.3",
              "# LOOK: keyword / regex rules you trust, as extra labelers, e.g.",
              "# labeling_functions:",
              "#   - name: my_rule",
              f"#     label: {_quote(next(iter(found.label_counts)))}",
              "#     keywords: [some phrase]",
              "inference:",
              f"  text_column: {_quote(found.text_column)}  # the column `fmops predict` and the inbox read",
              "# LOOK: gates are blocking checks: all must pass for a specialist to become champion (and serve",
              "# `fmops predict`). The evaluation reports every figure either way; once the prompts and labels",
              "# are tuned, hold the specialist to them, e.g. - {metric: lift_over_best_prompt, min: 0.0}",
              "gates:",
              "  - metric: regression_vs_champion  # not worse on test than the current champion",
              "    min: -0.02",
              "  - metric: test_macro_f1",
              f"    min: {round(1.0 / len(found.label_counts), 2)}  # better than guessing among the labels",
              ""]
    return "\n".join(lines)


def _quote(value: str) -> str:
    """A YAML scalar: plain where that reads back as the same string, else double-quoted."""
    import yaml

    plain = str(value)
    if plain and yaml.safe_load(plain) == plain and not re.search(r"[#:\[\]{},&*!|>'\"%@`]|^\s|\s$", plain):
        return plain
    return '"' + plain.replace("\\", "\\\\").replace('"', '\\"') + '"'


def task_file(task: str, assets_dir: Path) -> Path:
    """Where the new task's spec goes: a valid name, not taken (checked before the data is read)."""
    from fmops_pipelines.spec import TASK_NAME

    if not TASK_NAME.match(task):
        raise SpecError(f"task name '{task}': use lower-case letters, digits and underscores, starting with a letter")
    target = assets_dir / task / "task.yaml"
    if target.exists():
        raise SpecError(f"{target}: task '{task}' exists already; pick another name or edit that file")
    return target


def write_task(task: str, found: Inspection, assets_dir: Path) -> Path:
    """assets/<task>/task.yaml, never over an existing one; the spec is validated before it takes that name."""
    from fmops_pipelines.spec import load_spec

    target = task_file(task, assets_dir)
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".task.yaml.tmp"
    tmp.write_text(render(task, found, folder))
    try:
        load_spec(tmp)
    except Exception:
        tmp.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()
        raise
    tmp.rename(target)
    return target
