"""A newcomer's path on data no shipped spec knows (SST-2 sentences as a CSV export): `fmops init` drafts the spec,
`fmops run` runs it unedited to a champion, `fmops predict` labels new rows of the same shape."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import sst2_reviews

pytestmark = pytest.mark.integration


def fmops(*args: str, cwd, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_init_then_run_then_predict_with_no_edits(tmp_path):
    data = sst2_reviews(rows=900, labelled=400)
    data.to_csv(tmp_path / "reviews.csv", index=False)
    env = {**os.environ, "FMOPS_HOME": str(tmp_path / ".fmops")}
    env.pop("FMOPS_ASSETS_DIR", None)  # ./assets of the user's project folder, as a newcomer has it
    init = fmops("init", "movie_reviews", "--data", "reviews.csv", cwd=tmp_path, env=env)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "assets" / "movie_reviews" / "task.yaml").is_file()

    run = fmops("run", "movie_reviews", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "model movie_reviews-specialist v1 is champion" in run.stdout
    specialist = next(line for line in run.stdout.splitlines() if line.strip().startswith("specialist v1"))
    assert float(specialist.split()[-1]) > 0.6  # test macro-F1 of a sentiment specialist (2 classes: chance 0.5)

    data.loc[400:, ["review"]].to_csv(tmp_path / "new.csv", index=False)
    predict = fmops("predict", "movie_reviews", "--input", "new.csv", "--output", "out.parquet", cwd=tmp_path, env=env)
    assert predict.returncode == 0, predict.stderr
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert len(out) == 500 and set(out["label"].astype(str)) <= {"negative", "positive"}
