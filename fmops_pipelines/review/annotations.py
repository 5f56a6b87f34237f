"""What a person answered, checked before anything is stored, and the CSV round for people without Label Studio.

Every annotation is checked against the task's rows as the latest run split them: a label outside the task's set,
an empty one, a row that no longer exists, a test row (review never touches the held-out test labels) or a row
whose text changed since it was queued stops the whole import with one line naming where it came from; nothing is
stored until every annotation passed (store.GoldStore.append is one transaction).
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fmops_pipelines.errors import DataError
from fmops_pipelines.paths import atomic_write_bytes
from fmops_pipelines.review.store import Entry, now, text_sha

CSV_COLUMNS = ["round", "id", "text", "kind", "reason", "prediction", "confidence", "current_label", "label", "annotator"]


@dataclass(frozen=True)
class Annotation:
    row_id: str
    label: str | None
    annotator: str
    labelled_at: str
    round: int | None
    source: str  # "label_studio" or "csv"
    source_key: str
    where: str  # where it came from, for errors: "round.csv line 4", "Label Studio task 17"
    text: str | None = None  # the text the person saw, where the source carries it


def to_entries(annotations: Sequence[Annotation], splits: pd.DataFrame, label_names: list[str],
               current: pd.DataFrame | None = None) -> list[Entry]:
    """Checked store entries, each with the label it replaces (the row's label in the gold store, else in the
    data); raises DataError naming the first bad annotation (and how many more there are)."""
    rows = splits.assign(id=splits["id"].astype(str)).drop_duplicates("id").set_index("id")
    previous = rows["label"].where(rows["label"].notna(), None).to_dict()
    if current is not None and len(current):
        previous.update(dict(zip(current["row_id"], current["label"])))
    problems, entries = [], []
    for a in annotations:
        problem = _problem(a, rows, label_names)
        if problem:
            problems.append(f"{a.where}: {problem}")
            continue
        entries.append(Entry(a.row_id, text_sha(rows.at[a.row_id, "text"]), a.label.strip(), a.annotator,
                             a.labelled_at, a.round, a.source, a.source_key, previous.get(a.row_id)))
        previous[a.row_id] = a.label.strip()
    if problems:
        more = f" (and {len(problems) - 1} more problem(s); nothing was imported)" if len(problems) > 1 \
            else " (nothing was imported)"
        raise DataError(problems[0] + more)
    return entries


def _problem(a: Annotation, rows: pd.DataFrame, label_names: list[str]) -> str | None:
    if a.label is None or not a.label.strip():
        return f"row {a.row_id}: empty label"
    if a.label.strip() not in label_names:
        # a label typed in another case is named, not taken: the label set is the spec's, exactly
        near = [n for n in label_names if n.casefold() == a.label.strip().casefold()]
        return (f"row {a.row_id}: label '{a.label.strip()}' is not one of {', '.join(label_names)}"
                + (f" (did you mean '{near[0]}'?)" if near else ""))
    if a.row_id not in rows.index:
        return f"row {a.row_id} no longer exists in the task's data"
    if rows.at[a.row_id, "split"] == "test":
        return f"row {a.row_id} is a test row: review never changes the held-out test labels"
    if a.text is not None and text_sha(a.text) != text_sha(rows.at[a.row_id, "text"]):
        return f"row {a.row_id}: its text changed since it was queued"
    return None


def write_csv(queue: pd.DataFrame, path: Path) -> int:
    """The queue (with its `round`) as a CSV a person fills in (column `label`; `annotator` optional); written whole
    or not at all."""
    out = queue.assign(label="", annotator="", current_label=queue["current_label"].fillna(""))
    buffer = io.StringIO()
    # the queue's confidences are float32: written as they are, 0.462 reads 0.4620000123977661
    out[CSV_COLUMNS].to_csv(buffer, index=False, float_format="%.4f")
    atomic_write_bytes(path, buffer.getvalue().encode())
    return len(out)


def read_csv(path: Path) -> list[Annotation]:
    """The labelled rows of a filled-in CSV (rows with an empty `label` are not labelled yet and are skipped)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("id", "label") if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: no '{missing[0]}' column (write one with `fmops review TASK --export FILE`)")
    default_annotator = getpass.getuser()
    out = []
    for row in reader:
        if not (row.get("label") or "").strip():
            continue
        annotator = (row.get("annotator") or "").strip() or default_annotator
        key = hashlib.sha256(f"{row['id']}\x1f{row['label'].strip()}\x1f{annotator}".encode()).hexdigest()[:24]
        round_ = (row.get("round") or "").strip()
        out.append(Annotation(str(row["id"]), row["label"], annotator, now(), int(round_) if round_.isdigit() else None,
                              "csv", f"csv:{key}", f"{path.name} line {reader.line_num}", row.get("text")))
    return out
