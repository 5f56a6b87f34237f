"""Test environment: real data from ../shared/datasets, all state in a temp FMOPS_HOME, no network."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO.parent / "shared" / "datasets").resolve()

os.environ.setdefault("FMOPS_DATA_HOME", str(SHARED_DATA))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session", autouse=True)
def _fmops_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("fmops_home")
    os.environ["FMOPS_HOME"] = str(home)
    # one FM cache for every test's FMOPS_HOME, so each small run does not embed the same slice again;
    # tests about caching itself take their own (small_run_env(own_fm_cache=True))
    os.environ["FMOPS_FM_CACHE"] = str(home / "shared_fm_cache.sqlite")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):  # the embedded store unless a test says otherwise
        os.environ.pop(name, None)
    return home


@pytest.fixture()
def assets_dir(tmp_path, monkeypatch) -> Path:
    """An empty assets/ folder for specs written by a test."""
    root = tmp_path / "assets"
    root.mkdir()
    monkeypatch.setenv("FMOPS_ASSETS_DIR", str(root))
    return root


def write_task(root: Path, name: str, spec: dict) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def shipped_spec(name: str) -> dict:
    return yaml.safe_load((REPO / "assets" / name / "task.yaml").read_text())


def sst2_reviews(rows: int = 600, labelled: int = 300) -> pd.DataFrame:
    """SST-2 sentences as a user's export: its own column names, an id, some rows labelled and the rest empty."""
    df = pd.read_csv(SHARED_DATA / "sst2_phrases" / "train.tsv", sep="\t")
    df = df[df["sentence"].str.len() >= 40].sample(rows, random_state=0).reset_index(drop=True)
    out = pd.DataFrame({"review_id": [f"r{i}" for i in range(rows)], "stars": (df.index % 5) + 1,
                        "review": df["sentence"].str.strip(),
                        "sentiment": df["label"].map({0: "negative", 1: "positive"})})
    out.loc[labelled:, "sentiment"] = ""
    return out


# What tests of the machinery around the method run (promotion, Postgres instances, secrets, batch inference, the
# deployment's second task): the label model chosen by its own dev score rather than by a student trained on each
# kind's labels, no light fit, no cross-fitted gold rows' recipe, a dozen trainings fewer per run (a 700-row run:
# 41 s against 49 s). test_lifecycle, the session's finished run (small_run_env: the crash tests, the UI and review
# rounds read it) and the unit tests run the whole method.
FIXED_METHOD = {"label_model": {"select_by": "label_model"}, "specialist": {"gold_rows": False, "light_fit": None}}


def small_sms_spec(fixed_method: bool = False, **overrides) -> dict:
    """The shipped sms_spam spec on a stratified 700-row slice with a 60-row dev split. `fixed_method`: the
    label model kept by its own dev score and the specialist's recipe fixed (FIXED_METHOD)."""
    spec = shipped_spec("sms_spam")
    spec["splits"] = {"dev_size": 60, "test_fraction": 0.25, "seed": 0, "max_rows": 700}
    spec["prompts"]["templates"] = spec["prompts"]["templates"][:2]
    spec["prompts"]["max_labelers"] = 4
    small = {"learning_rate": 0.01, "batch_size": 32}  # a few hundred rows: larger steps
    spec["specialist"] = {"ngram": small, "ngram_char": small}
    if fixed_method:
        spec["label_model"] = {**spec.get("label_model", {}), **FIXED_METHOD["label_model"]}
        spec["specialist"].update(FIXED_METHOD["specialist"])
    spec.update(overrides)
    return spec


SMALL_RUN_GATES = [{"metric": "test_macro_f1", "min": 0.5}, {"metric": "speedup_over_fm", "min": 10},
                   {"metric": "label_coverage", "min": 0.1}]


def small_run_env(root: Path, home: Path, own_fm_cache: bool = False) -> dict:
    """Environment for `fmops run sms_spam` on the small slice (SMALL_RUN_GATES) with its own FMOPS_HOME
    and embedded instance; the session's shared FM cache unless `own_fm_cache` (then a cold one in home)."""
    write_task(root / "assets", "sms_spam", small_sms_spec(gates=SMALL_RUN_GATES))
    env = {**os.environ, "FMOPS_ASSETS_DIR": str(root / "assets"), "FMOPS_HOME": str(home),
           "FMOPS_CHECKPOINT_EVERY_S": "0"}  # the small run trains for seconds: checkpoint it every epoch
    for name in ("DAGSTER_HOME", "FMOPS_OWN_DAGSTER_HOME", *(("FMOPS_FM_CACHE",) if own_fm_cache else ())):
        env.pop(name, None)
    return env


def final_outputs(home: Path, task: str = "sms_spam") -> tuple:
    """What a run leaves that must not depend on how it got there: held-out test metrics, best epoch."""
    from fmops_pipelines.launcher import stored

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FMOPS_HOME", str(home))
        return stored(task, "evaluation")["test"], stored(task, "specialist")["best_epoch"]


@pytest.fixture(scope="session")
def finished_small_run(tmp_path_factory) -> tuple[Path, dict]:
    """(root, env) of one uninterrupted `fmops run sms_spam` on the small slice, made once per session:
    the UI test browses it, the crash tests compare their resumed runs with it. Tests only read it."""
    import subprocess
    import sys

    from tests.processes import free_port

    root = tmp_path_factory.mktemp("finished_small_run")
    # plots and reports are linked at this address from the asset pages; `fmops ui` serves it (test_ui_browser)
    env = {**small_run_env(root, root / "home"), "FMOPS_REPORTS_URL": f"http://localhost:{free_port()}"}
    done = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "run", "sms_spam"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, env


def sms_student_data(root: Path, smoothing: float = 0.1) -> dict:
    """The small sms_spam slice for student tests: train texts with soft labels smoothed from their gold
    labels (labels the test split never sees), dev and test texts with gold label indices."""
    import numpy as np

    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.data.splits import label_indices, make_splits, part
    from fmops_pipelines.spec import load_spec

    spec = load_spec(write_task(root, "sms_spam", small_sms_spec()))
    df = load_dataset(spec)
    splits = make_splits(df, spec.splits)
    train = part(splits, "train").merge(df[["id", "label"]].rename(columns={"label": "gold"}), on="id")
    dev, test = part(splits, "dev"), part(splits, "test")
    y = label_indices(train["gold"], spec.label_names)
    return {"spec": spec, "labels": spec.label_names, "texts": train["text"].tolist(),
            "soft": np.eye(2)[y] * (1 - 2 * smoothing) + smoothing, "test_frame": test,
            "dev": dev["text"].tolist(), "y_dev": label_indices(dev["label"], spec.label_names),
            "test": test["text"].tolist(), "y_test": label_indices(test["label"], spec.label_names)}


@pytest.fixture(scope="session")
def minilm(tmp_path_factory):
    """The packaged all-MiniLM-L6-v2 behind the embedding backend, with a throwaway cache."""
    from fmops_pipelines.fm.cache import FMCache
    from fmops_pipelines.fm.embedding import EmbeddingFM

    return EmbeddingFM(cache=FMCache(tmp_path_factory.mktemp("fm") / "cache.sqlite"))


@pytest.fixture()
def copy_of_dataset(tmp_path) -> callable:
    """Copy one registry file into a private data home (so a test can corrupt it)."""

    def _copy(relpath: str) -> Path:
        dest = tmp_path / "data_home" / relpath
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED_DATA / relpath, dest)
        return tmp_path / "data_home"

    return _copy
