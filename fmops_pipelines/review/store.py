"""The gold store: every label a person gave through a review round, append-only (who, when, which round, the
label it replaced), in FMOPS_HOME/gold_store.sqlite.

Append-only so nothing a person said is ever lost: a changed mind is a new entry, and the latest entry of a row is
its label (`reviewed`). Each entry carries the key of what it came from (a Label Studio annotation and its update
time, or a CSV row); an import whose keys are all known adds nothing, so importing twice changes nothing. An import
is one transaction: all its entries or none. SQLite, not a file per round: the sensor and the CLI may import at
the same time, and SQLite's lock serialises them.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from fmops_pipelines import paths

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  task TEXT NOT NULL, row_id TEXT NOT NULL, text_sha TEXT NOT NULL, label TEXT NOT NULL, previous_label TEXT,
  annotator TEXT NOT NULL, labelled_at TEXT NOT NULL, round INTEGER, source TEXT NOT NULL,
  source_key TEXT NOT NULL, imported_at TEXT NOT NULL, UNIQUE (task, source_key));
CREATE TRIGGER IF NOT EXISTS labels_append_only_update BEFORE UPDATE ON labels
  BEGIN SELECT RAISE(ABORT, 'the gold store is append-only'); END;
CREATE TRIGGER IF NOT EXISTS labels_append_only_delete BEFORE DELETE ON labels
  BEGIN SELECT RAISE(ABORT, 'the gold store is append-only'); END;
CREATE TABLE IF NOT EXISTS rounds (
  task TEXT NOT NULL, round INTEGER NOT NULL, created_at TEXT NOT NULL, destination TEXT NOT NULL,
  model_version TEXT, PRIMARY KEY (task, round));
CREATE TABLE IF NOT EXISTS queued (
  task TEXT NOT NULL, round INTEGER NOT NULL, row_id TEXT NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL,
  external_id TEXT, PRIMARY KEY (task, round, row_id));
CREATE TABLE IF NOT EXISTS projects (
  task TEXT NOT NULL, url TEXT NOT NULL, project_id INTEGER NOT NULL, PRIMARY KEY (task, url));
"""


def text_sha(text: str) -> str:
    """Which text a label was given for: a row whose text changed since is not the row the person saw."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Entry:
    """One label a person gave for one row."""

    row_id: str
    text_sha: str
    label: str
    annotator: str
    labelled_at: str
    round: int | None
    source: str  # "label_studio" or "csv"
    source_key: str  # what it came from: importing the same thing again adds nothing
    previous_label: str | None = None


class GoldStore:
    def __init__(self, path: Path | None = None):
        self.path = path or paths.fmops_home() / "gold_store.sqlite"

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        try:
            con.executescript(SCHEMA)
            with con:  # one transaction: committed whole or rolled back whole
                yield con
        finally:
            con.close()

    def append(self, task: str, entries: Sequence[Entry]) -> int:
        """Store the entries not stored yet (by source_key), all in one transaction; returns how many were new."""
        stamp = now()
        with self._db() as con:
            before = con.total_changes
            con.executemany(
                "INSERT OR IGNORE INTO labels (task, row_id, text_sha, label, previous_label, annotator, labelled_at,"
                " round, source, source_key, imported_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(task, e.row_id, e.text_sha, e.label, e.previous_label, e.annotator, e.labelled_at, e.round,
                  e.source, e.source_key, stamp) for e in entries])
            return con.total_changes - before

    def known_keys(self, task: str) -> set[str]:
        with self._db() as con:
            return {k for (k,) in con.execute("SELECT source_key FROM labels WHERE task = ?", (task,))}

    def entries(self, task: str) -> pd.DataFrame:
        """Every entry of the task, oldest first."""
        with self._db() as con:
            return pd.read_sql_query("SELECT * FROM labels WHERE task = ? ORDER BY seq", con, params=(task,))

    def reviewed(self, task: str) -> pd.DataFrame:
        """Each reviewed row's current label: its latest entry (row_id, text_sha, label, annotator, labelled_at,
        round, previous_label)."""
        entries = self.entries(task)
        return entries.drop_duplicates("row_id", keep="last").reset_index(drop=True)

    def count(self, task: str) -> int:
        with self._db() as con:
            return con.execute("SELECT COUNT(*) FROM labels WHERE task = ?", (task,)).fetchone()[0]

    def next_round(self, task: str) -> int:
        with self._db() as con:
            return con.execute("SELECT COALESCE(MAX(round), 0) + 1 FROM rounds WHERE task = ?", (task,)).fetchone()[0]

    def open_round(self, task: str, number: int, destination: str, model_version: str | None,
                   rows: Sequence[tuple[str, str, str, str | None]]) -> None:
        """Record round `number` (rows: row_id, kind, reason, external id), once its rows reached the person: a
        second round with the same number fails (two pushes at once), and the first stands."""
        with self._db() as con:
            con.execute("INSERT INTO rounds VALUES (?,?,?,?,?)", (task, number, now(), destination, model_version))
            con.executemany("INSERT INTO queued VALUES (?,?,?,?,?,?)",
                            [(task, number, r, kind, reason, ext) for r, kind, reason, ext in rows])

    def rounds(self, task: str) -> pd.DataFrame:
        with self._db() as con:
            return pd.read_sql_query(
                "SELECT r.round, r.created_at, r.destination, r.model_version, COUNT(q.row_id) AS rows "
                "FROM rounds r LEFT JOIN queued q ON q.task = r.task AND q.round = r.round WHERE r.task = ? "
                "GROUP BY r.round ORDER BY r.round", con, params=(task,))

    def queued(self, task: str) -> pd.DataFrame:
        """Every row ever queued (row_id, round, kind, reason, external_id)."""
        with self._db() as con:
            return pd.read_sql_query("SELECT round, row_id, kind, reason, external_id FROM queued WHERE task = ? "
                                     "ORDER BY round", con, params=(task,))

    def picked(self, task: str) -> frozenset[str]:
        """The pool rows a review queue asked a person to label (kind "label", not gold re-checks): the splits keep
        them out of every out-of-fold score (data.splits.PICKED)."""
        with self._db() as con:
            rows = con.execute("SELECT DISTINCT row_id FROM queued WHERE task = ? AND kind = 'label'", (task,))
            return frozenset(r[0] for r in rows.fetchall())

    def project(self, task: str, url: str) -> int | None:
        with self._db() as con:
            row = con.execute("SELECT project_id FROM projects WHERE task = ? AND url = ?", (task, url)).fetchone()
            return row[0] if row else None

    def set_project(self, task: str, url: str, project_id: int) -> None:
        with self._db() as con:
            con.execute("INSERT OR REPLACE INTO projects VALUES (?,?,?)", (task, url, project_id))
