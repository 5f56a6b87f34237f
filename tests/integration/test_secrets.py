"""An API key given in the environment reaches the FM endpoint and nowhere else: not the MLflow store,
the Dagster event log, the asset storage, the report, the FM cache or the console, also when the endpoint
rejects it."""

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests import fake_openai
from tests.conftest import REPO, small_sms_spec, write_task

pytestmark = pytest.mark.integration


def files_containing(root: Path, needle: bytes) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_the_fm_api_key_is_used_and_never_written_down(tmp_path):
    httpd, url = fake_openai.serve()
    key = f"sk-fmops-canary-{uuid.uuid4().hex}"
    # one retry: the run against the endpoint that went down stops after ~1 s of backoff per row, not 7.5 s
    fm = {"backend": "openai", "model": "tiny", "base_url": url, "timeout_s": 2, "max_retries": 1}
    spec = small_sms_spec(fixed_method=True, fm=fm,
                          prompts={"templates": ["Message: {text}"], "max_labelers": 2},
                          labels=[{"name": "ham", "verbalizers": ["ham"]}, {"name": "spam", "verbalizers": ["spam"]}],
                          gates=[{"metric": "test_macro_f1", "min": 0.0}])
    spec["splits"].update(max_rows=240, dev_size=40)
    write_task(tmp_path / "assets", "sms_secret", spec)
    home = tmp_path / "home"
    env = {**__import__("os").environ, "FMOPS_ASSETS_DIR": str(tmp_path / "assets"), "FMOPS_HOME": str(home),
           "FMOPS_FM_API_KEY": key}
    for name in ("DAGSTER_HOME", "FMOPS_OWN_DAGSTER_HOME", "FMOPS_FM_CACHE", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    try:
        done = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "run", "sms_secret"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        assert fake_openai.FaultyEndpoint.keys == {f"Bearer {key}"}  # the key was used, and only as the header
        assert (home / "mlflow.db").exists() and (home / "dagster").is_dir() and any((home / "reports").rglob("*.html"))
        assert files_containing(home, key.encode()) == []  # MLflow store and artifacts, event log, report, cache
        assert key not in done.stdout + done.stderr

        fake_openai.FaultyEndpoint.down_after = 0  # every request now fails: the step stops with one line
        rejected = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "run", "sms_secret"], cwd=REPO,
                                  env={**env, "FMOPS_HOME": str(tmp_path / "home2")}, capture_output=True, text=True,
                                  timeout=600, check=False)
        assert rejected.returncode == 2
        assert key not in rejected.stdout + rejected.stderr
        assert files_containing(tmp_path / "home2", key.encode()) == []
    finally:
        httpd.shutdown()
