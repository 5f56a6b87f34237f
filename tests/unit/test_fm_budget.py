"""fm.budget: the FM labels a coverage sample of the pool, so its calls stop growing with the pool; `fmops plan`
says so before a run."""

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO, SHARED_DATA, small_sms_spec, write_task


def sst2_texts(n: int) -> list[str]:
    df = pd.read_csv(SHARED_DATA / "sst2_phrases" / "train.tsv", sep="\t")
    return df["sentence"].str.strip().head(n).tolist()


@pytest.mark.parametrize("sizes, budget", [([5, 1, 0, 100, 3], 7), ([5, 1, 0, 100, 3], 3), ([40, 40, 20], 10),
                                           ([5, 1, 2], 8), ([1000, 3, 7, 300], 131)])
def test_each_cluster_gets_its_share_of_the_budget(sizes, budget):
    from fmops_pipelines.data.fm_budget import _quota

    sizes = np.array(sizes)
    quota = _quota(sizes, budget)
    assert quota.sum() == min(budget, sizes.sum())
    assert (quota <= sizes).all()
    nonempty = sizes > 0
    if budget >= nonempty.sum():  # every kind of text is asked about at least once
        assert (quota[nonempty] >= 1).all()
    share = min(budget, sizes.sum()) * sizes / sizes.sum()  # proportional, up to rounding and the floor of one
    assert (np.abs(quota - share) <= nonempty.sum()).all()
    assert quota[sizes.argmax()] == quota.max()


def test_coverage_sample_is_the_budget_drawn_across_the_pool_and_repeatable():
    from fmops_pipelines.data.fm_budget import coverage_sample

    texts = sst2_texts(3000)
    first = coverage_sample(texts, 400, seed=0)
    assert first.dtype == bool and first.sum() == 400
    assert (coverage_sample(texts, 400, seed=0) == first).all()  # a rerun asks the FM about the same rows
    assert (coverage_sample(texts, 400, seed=1) != first).any()
    assert coverage_sample(texts, 5000, seed=0).all()  # a budget above the pool: every row


def test_a_rare_kind_of_text_is_sampled_closer_to_its_share_than_by_a_plain_random_draw():
    """5 % of the pool is SMS among movie-review phrases; over 20 seeds, the cluster-stratified samples of 200 rows
    hold closer to the 10 SMS rows that share is than plain random draws of 200 do (measured: 1.65 rows off on
    average, against 3.25)."""
    from fmops_pipelines.data.fm_budget import coverage_sample

    sms = pd.read_csv(SHARED_DATA / "sms_spam_uci" / "SMSSpamCollection", sep="\t", header=None,
                      names=["label", "text"], quoting=3)["text"].head(100).tolist()
    texts = [*sst2_texts(1900), *sms]
    stratified = np.array([coverage_sample(texts, 200, seed=s)[1900:].sum() for s in range(20)])
    rng = np.random.default_rng(0)
    plain = np.array([(rng.choice(len(texts), 200, replace=False) >= 1900).sum() for _ in range(20)])
    assert np.abs(stratified - 10).mean() < np.abs(plain - 10).mean(), (stratified, plain)


def test_under_a_budget_prompts_vote_on_the_sampled_rows_only(minilm):
    from fmops_pipelines.data.fm_budget import FM_SAMPLE, with_fm_sample
    from fmops_pipelines.fm.base import Prompt
    from fmops_pipelines.fm.exploration import CalibratedPrompt
    from fmops_pipelines.supervision.label_matrix import prompt_label_matrix

    texts = sst2_texts(700)
    splits = pd.DataFrame({"id": [f"r{i}" for i in range(700)], "text": texts,
                           "split": ["dev"] * 50 + ["test"] * 50 + ["train"] * 600, "label": None})
    budgeted = with_fm_sample(splits, 250, seed=0)
    assert budgeted[FM_SAMPLE].sum() == 250 and budgeted.loc[:99, FM_SAMPLE].all()  # gold and test first
    prompt = CalibratedPrompt(Prompt("{label}", ("negative", "positive")), center=(0.0, 0.0), temperature=1.0,
                              threshold=0.0)
    before = minilm.stats.calls
    matrix = prompt_label_matrix(minilm, [prompt], budgeted)
    votes = matrix[prompt.prompt.id].to_numpy()
    assert (votes[~budgeted[FM_SAMPLE].to_numpy()] == -1).all()
    assert (votes[budgeted[FM_SAMPLE].to_numpy()] >= 0).all()
    assert minilm.stats.calls - before <= 250 + 2  # the sampled texts and the label prompts, nothing else


def test_the_budget_is_a_ceiling_on_every_row_the_fm_labels_gold_and_test_included():
    """Gold and test come out of the budget, so the FM's rows do not grow with them (nor with review rounds' gold);
    a budget they would leave under MIN_POOL_SAMPLE pool rows is refused with one line and the numbers."""
    from fmops_pipelines.data.fm_budget import FM_SAMPLE, MIN_POOL_SAMPLE, with_fm_sample
    from fmops_pipelines.errors import SpecError

    texts = sst2_texts(2000)
    for gold in (100, 400):  # a review round added 300 gold rows: the pool's share shrinks by as many
        splits = pd.DataFrame({"id": [f"r{i}" for i in range(2000)], "text": texts, "label": None,
                               "split": ["dev"] * gold + ["test"] * 300 + ["train"] * (1700 - gold)})
        asked = with_fm_sample(splits, 1000, seed=0)[FM_SAMPLE].to_numpy()
        assert asked.sum() == 1000 and asked[:gold + 300].all()
        assert asked[gold + 300:].sum() == 1000 - gold - 300
    assert with_fm_sample(splits, 5000, seed=0)[FM_SAMPLE].all()  # a budget above the task: every row
    with pytest.raises(SpecError, match=r"^fm.budget 750: the FM labels the 700 gold and test rows first, which "
                                        r"leaves 50 pool rows .* raise it to 800 or more"):
        with_fm_sample(splits, 700 + MIN_POOL_SAMPLE // 2, seed=0)


def test_plan_prints_fm_calls_with_and_without_the_budget(tmp_path):
    spec = small_sms_spec()
    spec["splits"]["max_rows"] = 1500
    write_task(tmp_path / "assets", "sms_plan", spec)
    env = {**__import__("os").environ, "FMOPS_ASSETS_DIR": str(tmp_path / "assets"), "FMOPS_HOME": str(tmp_path / "h")}
    env.pop("TQDM_DISABLE")  # the suite's own quiet (tests/conftest.py): plan must keep the libraries quiet itself
    done = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "plan", "sms_plan", "--budget", "700",
                           "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Loading weights" not in done.stderr, done.stderr[-2000:]  # no progress bar of the FM's load
    plan = json.loads(done.stdout)
    without, with_budget = plan["plans"]
    assert without["budget"] is None and with_budget["budget"] == 700
    assert without["rows"] == with_budget["rows"] == without["fm_rows"] == 1500
    assert with_budget["fm_rows"] == 700  # gold and test inside the budget, the pool's sample the rest
    assert with_budget["fm_calls"] <= with_budget["fm_rows"] < without["fm_calls"] + 1
    assert plan["probe_calls_per_s"] > 0 and with_budget["fm_seconds"] < without["fm_seconds"]
    assert with_budget["usd"] is None  # no price in the spec
    assert plan["warnings"] == []  # fp32: nothing to warn about

    spec["fm"] = {"precision": "bf16"}  # where this CPU would emulate bf16, plan says so before anything runs
    write_task(tmp_path / "assets", "sms_plan_bf16", spec)
    slow = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "plan", "sms_plan_bf16", "--no-probe"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    from fmops_pipelines.fm.embedding import native_bf16

    assert slow.returncode == 0, slow.stderr[-2000:]
    assert ("warning: fm.precision bf16: this CPU has no native bfloat16" in slow.stdout) != native_bf16(), slow.stdout

    bad = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "plan", "sms_plan", "--budget", "5",
                          "--no-probe"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode != 0 and "--budget 5: fm.budget is at least 100 rows" in bad.stderr
    short = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "plan", "sms_plan", "--budget", "400",
                            "--no-probe"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    said = re.search(r"fm.budget 400: the FM labels the (\d+) gold and test rows first, which leaves 0 pool rows "
                     r".*raise it to (\d+) or more", short.stderr)
    assert short.returncode == 2 and said and int(said[2]) == int(said[1]) + 100, short.stderr
