import subprocess
import sys

from fmops_pipelines.cli import main
from tests.conftest import REPO, shipped_spec, write_task


def test_tasks_lists_the_shipped_tasks(capsys, monkeypatch):
    monkeypatch.setenv("FMOPS_ASSETS_DIR", str(REPO / "assets"))
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "sms_spam" in out and "ag_news" in out and "youtube_spam" in out


def test_malformed_spec_exits_2_with_one_line_and_no_traceback(assets_dir, tmp_path):
    spec = shipped_spec("sms_spam")
    spec["splits"]["dev_size"] = "lots"
    path = write_task(assets_dir, "sms_spam", spec)
    result = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "run", "sms_spam"], cwd=tmp_path,
                            env={**__import__("os").environ, "FMOPS_ASSETS_DIR": str(assets_dir)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {path}: splits.dev_size: Input should be a valid integer, "
                                      "unable to parse string as an integer")
    assert not (tmp_path / ".fmops").exists()  # nothing written before the spec is valid


def test_unknown_task_and_missing_champion_exit_2(assets_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FMOPS_HOME", str(tmp_path / "home"))
    write_task(assets_dir, "sms_spam", shipped_spec("sms_spam"))
    assert main(["evaluate", "nope", "--json"]) == 2
    assert "no such task 'nope'" in capsys.readouterr().err
    assert main(["evaluate", "sms_spam"]) == 2
    assert "no trained specialist yet; run `fmops run sms_spam` first" in capsys.readouterr().err
    (tmp_path / "in.csv").write_text("text\nhello\n")
    assert main(["predict", "sms_spam", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "o.csv")]) == 2
    assert "no champion model yet" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
