"""Which Dagster instance and MLflow store fmops uses: DAGSTER_HOME as the user set it (here a real
Postgres-backed one), the embedded default otherwise, and one line with exit 2 when a configured store
needs a driver this installation lacks."""

import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest
import yaml

from tests.conftest import REPO, small_sms_spec, write_task

pytestmark = pytest.mark.integration
POSTGRES = ("127.0.0.1", 5432)


def postgres_up() -> bool:
    try:
        with socket.create_connection(POSTGRES, timeout=2):
            return True
    except OSError:
        return False


def fmops(args: list[str], env: dict, block: str | None = None) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter; `block` makes a module unimportable there, as on a machine without it."""
    prelude = f"import sys; sys.modules[{block!r}] = None; " if block else "import sys; "
    code = prelude + f"from fmops_pipelines.cli import main; sys.exit(main({args!r}))"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def test_a_store_without_its_driver_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "in.csv").write_text("text\nhello\n")
    env = {**os.environ, "FMOPS_HOME": str(tmp_path / "home"),
           "MLFLOW_TRACKING_URI": "postgresql://postgres@127.0.0.1:5432/fmops_no_driver"}
    result = fmops(["predict", "sms_spam", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "o.csv")],
                   env, block="psycopg2")  # SQLAlchemy 2.0 connects postgresql:// with psycopg2
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: the configured store needs the 'psycopg2' driver, which is not "
                                     "installed: pip install 'fmops[postgres]' (or .[postgres] in a checkout)")

    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": {"postgres": {"postgres_url": "postgresql://x"}}}))
    env = {**os.environ, "FMOPS_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(home)}
    result = fmops(["run", "sms_spam"], env, block="dagster_postgres")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the configured store needs the 'dagster_postgres' driver, which is not installed: "
        "pip install 'fmops[postgres]' (or .[postgres] in a checkout)")


@pytest.mark.skipif(not postgres_up(), reason="no PostgreSQL answering on 127.0.0.1:5432")
@pytest.mark.parametrize("form", ["shipped postgres_db", "postgres_url"])
def test_a_postgres_dagster_home_is_used_as_it_is(tmp_path, form):
    """Both of Dagster's documented forms, as a user writes them (no driver in the URL): under SQLAlchemy 2.1 a
    bare postgresql:// picked psycopg 3 and the first event's NOTIFY failed with a syntax error."""
    psycopg2 = pytest.importorskip("psycopg2", reason="the postgres extra is not installed")
    pytest.importorskip("dagster_postgres", reason="the postgres extra is not installed")
    db = f"fmops_it_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=POSTGRES[0], port=POSTGRES[1], user="postgres", dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {db}")
    try:
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "deploy" / "postgres" / "dagster.yaml", home / "dagster.yaml")  # the shipped file
        if form == "postgres_url":
            config = yaml.safe_load((home / "dagster.yaml").read_text())
            config["storage"] = {"postgres": {"postgres_url": f"postgresql://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{db}"}}
            (home / "dagster.yaml").write_text(yaml.safe_dump(config))
        spec = small_sms_spec(fixed_method=True, gates=[{"metric": "test_macro_f1", "min": 0.5}])
        spec["splits"].update(max_rows=240, dev_size=40)  # what is checked is where the run is stored, not the model
        write_task(tmp_path / "assets", "sms_spam", spec)
        env = {**os.environ, "FMOPS_HOME": str(tmp_path / "fmops_home"), "DAGSTER_HOME": str(home),
               "FMOPS_ASSETS_DIR": str(tmp_path / "assets"), "DAGSTER_PG_HOST": POSTGRES[0],
               "DAGSTER_PG_PORT": str(POSTGRES[1]), "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": "",
               "DAGSTER_PG_DB": db}
        env.pop("FMOPS_OWN_DAGSTER_HOME", None)
        result = fmops(["run", "sms_spam"], env)
        assert result.returncode == 0, result.stderr
        assert not (tmp_path / "fmops_home" / "dagster").exists()  # the embedded instance was not used
        with psycopg2.connect(host=POSTGRES[0], port=POSTGRES[1], user="postgres", dbname=db) as conn:
            cur = conn.cursor()
            cur.execute("SELECT pipeline_name, status FROM runs")
            assert cur.fetchall() == [("sms_spam_lifecycle", "SUCCESS")]
            cur.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
            assert cur.fetchone()[0] == 11  # data .. champion (the gold teacher and review queue too), all in Postgres
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.close()
