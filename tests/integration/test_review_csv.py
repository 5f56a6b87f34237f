"""A review round as CSV, for people without Label Studio: `fmops review --export` writes the queue of the
session's small sms_spam run, a person fills in labels, `--import` stores them; a bad file stops with one line and
stores nothing, and the same file twice adds nothing."""

from __future__ import annotations

import io
import shutil
from contextlib import redirect_stderr, redirect_stdout

import pandas as pd
import pytest

from fmops_pipelines.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture()
def home(finished_small_run, tmp_path, monkeypatch):
    root, _ = finished_small_run
    shutil.copytree(root / "home", tmp_path / "home", ignore=shutil.ignore_patterns("run.lock"))
    monkeypatch.setenv("FMOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FMOPS_ASSETS_DIR", str(root / "assets"))
    return tmp_path


def fmops(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_a_csv_round_exports_the_queue_and_imports_what_a_person_filled_in(home):
    from fmops_pipelines.launcher import stored
    from fmops_pipelines.review.store import GoldStore

    path = home / "round.csv"
    code, out, err = fmops("review", "sms_spam", "--export", str(path))
    assert code == 0, err
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
    queue = stored("sms_spam", "review_queue")
    assert f"round 1: {(queue['kind'] == 'label').sum()} row(s) to label" in out
    assert list(sheet["id"]) == list(queue["id"]) and (sheet["label"] == "").all() and (sheet["reason"] != "").all()
    assert set(sheet["round"]) == {"1"}
    assert GoldStore().picked("sms_spam") == set(queue.loc[queue["kind"] == "label", "id"])  # not the re-checks

    sheet.loc[0, "label"] = "eggs"
    sheet.loc[1, "label"] = "ham"
    sheet.to_csv(path, index=False)
    code, _, err = fmops("review", "sms_spam", "--import", str(path))
    assert code == 2 and err.strip() == ("error: round.csv line 2: row " + sheet.loc[0, "id"] +
                                         ": label 'eggs' is not one of ham, spam (nothing was imported)")
    assert GoldStore().count("sms_spam") == 0

    sheet.loc[0, "label"] = "spam"
    sheet.to_csv(path, index=False)
    code, out, err = fmops("review", "sms_spam", "--import", str(path))
    assert code == 0 and "2 new label(s) from" in out, err
    code, out, _ = fmops("review", "sms_spam", "--import", str(path))
    assert code == 0 and "0 new label(s)" in out and GoldStore().count("sms_spam") == 2
    reviewed = GoldStore().reviewed("sms_spam").set_index("row_id")
    assert reviewed.loc[sheet.loc[0, "id"], "label"] == "spam" and set(reviewed["round"]) == {1}

    code, out, _ = fmops("review", "sms_spam", "--export", str(home / "again.csv"))
    assert code == 0 and "nothing new to ask" in out  # every queued row is with the person or answered
    code, _, err = fmops("review", "sms_spam", "--import", str(home / "missing.csv"))
    assert code == 2 and "missing.csv: no such file" in err
