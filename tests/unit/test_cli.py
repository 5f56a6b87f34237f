import os
import subprocess
import sys

import pytest

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
                            capture_output=True, text=True, timeout=120, check=False)
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


def test_summary_prints_every_figure_with_one_rounding_rule():
    import io

    from fmops_pipelines.cli import print_summary
    from fmops_pipelines.display import num

    m = {"accuracy": 0.9, "macro_f1": 0.8}
    summary = {"task": "t", "model": {"name": "t-specialist", "version": "2", "alias": "champion"},
               "test": {"n": 10, **m}, "baselines": {"best_prompt": m, "majority_vote": m, "label_model": m},
               "throughput": {"fm_texts_per_s": 57.3, "specialist_texts_per_s": 121476.9},
               "labeling": {"fm_calls": 5178, "fm_cache_hits": 62734, "labelers": 8},
               "gates": [{"name": "speedup_over_fm", "value": 2119.4345, "threshold": 100.0, "passed": True},
                         {"name": "ece", "value": 0.02171, "threshold": 0.1, "passed": True}], "passed": True}
    out = io.StringIO()
    print_summary(summary, out, fm_abstains={"http_503": 3, "timeout": 1})
    text = out.getvalue()
    assert "FM requests without a usable answer: 4 (http_503 3, timeout 1); those rows abstained" in text
    assert "throughput: FM 57.30 texts/s, specialist 121,477 texts/s (2,119x)" in text  # the gate's own ratio
    assert "gate speedup_over_fm               2,119 vs 100      passed" in text
    assert "gate ece                           0.022 vs 0.100    passed" in text
    assert "5,178 FM calls (new answers), 62,734 requests answered by the FM cache" in text
    assert [num(x) for x in (950.69, 1.5, 0.1853, -0.02)] == ["951", "1.50", "0.185", "-0.020"]
    assert "  label model                              0.900     0.800" in text  # a summary whose label model has no kind
    summary["baselines"] |= {"label_model": {**m, "kind": "best_labeler"},
                             "teacher": {"accuracy": 0.7, "macro_f1": 0.6, "kind": "majority_vote"}}
    out = io.StringIO()
    print_summary(summary, out)
    assert ("  label model (best_labeler)               0.900     0.800\n"
            "  teacher (majority_vote)                  0.700     0.600\n") in out.getvalue()


def test_celery_needs_its_extra_and_a_shared_instance(tmp_path):
    """FMOPS_EXECUTOR=celery: an unknown executor, the embedded SQLite instance (workers could not share it)
    and a missing dagster-celery are each one line with exit 2, before any step runs."""
    import os

    write_task(tmp_path / "assets", "sms_spam", shipped_spec("sms_spam"))
    base = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "FMOPS_OWN_DAGSTER_HOME")}
    base.update(FMOPS_ASSETS_DIR=str(tmp_path / "assets"), FMOPS_HOME=str(tmp_path / "home"))

    def fmops(env: dict, block: str = "") -> subprocess.CompletedProcess:
        prelude = f"import sys; sys.modules[{block!r}] = None; " if block else "import sys; "
        code = prelude + "from fmops_pipelines.cli import main; sys.exit(main(['run', 'sms_spam']))"
        return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300, check=False)

    result = fmops({**base, "FMOPS_EXECUTOR": "ray"})
    assert (result.returncode, result.stderr.strip()) == (
        2, "error: FMOPS_EXECUTOR=ray: unknown executor (choose one of default, celery)")
    result = fmops({**base, "FMOPS_EXECUTOR": "celery"})
    assert (result.returncode, result.stderr.strip()) == (
        2, ("error: FMOPS_EXECUTOR=celery: Celery workers need a Dagster instance they can share; set DAGSTER_HOME "
           "to a Postgres-backed one (deploy/postgres/dagster.yaml)"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    result = fmops({**base, "FMOPS_EXECUTOR": "celery", "DAGSTER_HOME": str(home)}, block="dagster_celery")
    assert (result.returncode, result.stderr.strip()) == (
        2, ("error: FMOPS_EXECUTOR=celery needs dagster-celery, which is not installed: pip install 'fmops[celery]' "
           "(or .[celery] in a checkout)"))
    assert not list(home.glob("*.db")) and not (tmp_path / "home" / "storage").exists()  # nothing ran


STORE_COMMANDS = [["run", "sms_spam"], ["evaluate", "sms_spam"], ["predict", "sms_spam", "--input", "in.csv", "--output",
                  "out.csv"], ["batch", "sms_spam"], ["promote", "sms_spam", "1"], ["rollback", "sms_spam"]]


@pytest.mark.parametrize("uri, shown, cause, commands", [
    ("postgresql://fmops:secret@127.0.0.1:1/nowhere", "postgresql://fmops:***@127.0.0.1:1/nowhere",
     "cannot be reached: connection to server at \"127.0.0.1\", port 1 failed: Connection refused",
     STORE_COMMANDS),
    ("mysql://fmops@127.0.0.1:1/x", "mysql://fmops@127.0.0.1:1/x", "needs the 'MySQLdb' driver, which is not installed",
     STORE_COMMANDS[2:3]),
    ("http://127.0.0.1:1", "http://127.0.0.1:1", "cannot be reached: HTTPConnectionPool(host='127.0.0.1', port=1)",
     STORE_COMMANDS[2:3])])
def test_an_unreachable_tracking_store_or_a_missing_driver_is_one_line_and_exit_2(assets_dir, tmp_path, uri, shown,
                                                                                  cause, commands):
    """Every command that reaches the tracking store says which store and why, at once (MLflow alone retries a
    database for ~100 s, then raises a traceback), and leaves no output behind; the password is never shown."""
    write_task(assets_dir, "sms_spam", shipped_spec("sms_spam"))
    (tmp_path / "in.csv").write_text("text\nhello\n")
    env = {**os.environ, "FMOPS_ASSETS_DIR": str(assets_dir), "FMOPS_HOME": str(tmp_path / "home"),
           "MLFLOW_TRACKING_URI": uri}
    for command in commands:
        result = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", *command], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 2, (command, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"error: the MLflow tracking store {shown} {cause}"), (command, line)
        assert "secret" not in result.stderr and not (tmp_path / "out.csv").exists()
    rules = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "rules", "sms_spam"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120, check=False)  # reads the stored matrix, not the store
    assert rules.returncode == 2 and rules.stderr.strip() == "error: sms_spam: no labeling run yet; run `fmops run sms_spam` first"


def test_a_failure_is_blamed_on_a_store_only_when_the_store_s_code_raised_it(monkeypatch, tmp_path):
    from fmops_pipelines.errors import store_problem

    fm_endpoint = 'File "/app/fmops_pipelines/fm/openai_compat.py", line 80, in _post'
    assert store_problem("ConnectionError", "HTTPConnectionPool(host='llm', port=8000): refused", fm_endpoint) is None
    mlflow = 'File "/venv/site-packages/mlflow/store/db/utils.py", line 150, in create_sqlalchemy_engine_with_retry'
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert store_problem("OperationalError", "(psycopg2.OperationalError) connection refused", mlflow).endswith(
        "cannot be reached: connection refused")
    dagster = 'File "/venv/site-packages/dagster_postgres/utils.py", line 99, in retry_pg_connection_fn'
    assert store_problem("OperationalError", "connection refused", dagster) == (
        f"the Dagster instance's storage (configured in {tmp_path / 'dagster.yaml'}) cannot be reached: "
        "connection refused")


def test_a_step_error_is_its_first_line_with_text():
    from dagster._utils.error import SerializableErrorInfo

    from fmops_pipelines.launcher import _root_error

    def error(message, cls_name="ValueError", cause=None):
        return SerializableErrorInfo(message=message, stack=[], cls_name=cls_name, cause=cause)

    sklearn = error("ValueError: \nAll the 36 fits failed.\nIt is very likely that your model is misconfigured.\n")
    assert _root_error(error("wrapped", "DagsterExecutionStepExecutionError", sklearn)) == (
        "ValueError", "All the 36 fits failed.")
    assert _root_error(error("fmops_pipelines.errors.DataError: data.csv: no text column\n", "DataError")) == (
        "DataError", "data.csv: no text column")
    assert _root_error(error("", "KeyError")) == ("KeyError", "KeyError")


def test_an_fm_cache_set_to_a_folder_is_one_line_and_exit_2_before_anything_runs(assets_dir, tmp_path):
    write_task(assets_dir, "sms_spam", shipped_spec("sms_spam"))
    folder = tmp_path / "cache"
    folder.mkdir()
    env = {**os.environ, "FMOPS_ASSETS_DIR": str(assets_dir), "FMOPS_HOME": str(tmp_path / "home"),
           "FMOPS_FM_CACHE": str(folder)}
    result = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "run", "sms_spam"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert (result.returncode, result.stderr.strip()) == (
        2, f"error: FM cache {folder} is a directory: FMOPS_FM_CACHE names the SQLite file, e.g. {folder / 'fm_cache.sqlite'}")
    assert not (tmp_path / "home" / "storage").exists()  # no step ran
