"""Keyword rules mined from an FM's labels on real SMS texts: kept only where dev's gold labels agree."""

import numpy as np
import pandas as pd
import pytest
import yaml

from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.data.splits import label_indices
from fmops_pipelines.errors import SpecError
from fmops_pipelines.spec import load_spec
from fmops_pipelines.supervision.lfs import apply_lfs, keyword_lf, task_lfs
from fmops_pipelines.supervision.mined_lfs import (
    MiningConfig,
    as_task_yaml,
    labeling_functions,
    majority_labels,
    mine_from_votes,
    mine_rules,
)
from tests.conftest import shipped_spec, write_task

LABELS = ["ham", "spam"]


@pytest.fixture(scope="module")
def sms(tmp_path_factory):
    """1,500 SMS texts with gold labels, an 'FM' that is wrong on 20 % of them and abstains on 30 %, and 300
    dev rows with gold labels."""
    spec = load_spec(write_task(tmp_path_factory.mktemp("mined"), "sms_spam", shipped_spec("sms_spam")))
    df = load_dataset(spec).sample(1800, random_state=0).reset_index(drop=True)
    y = label_indices(df["label"], LABELS)
    rng = np.random.default_rng(0)
    fm = np.where(rng.random(len(df)) < 0.2, 1 - y, y)
    fm[rng.random(len(df)) < 0.3] = -1
    return {"texts": df["text"].tolist()[:1500], "fm": fm[:1500], "dev": df["text"].tolist()[1500:],
            "y_dev": y[1500:], "df": df}


def test_mined_rules_are_confirmed_on_dev_and_name_their_evidence(sms):
    cfg = MiningConfig()
    rules, table = mine_rules(sms["texts"], sms["fm"], sms["dev"], sms["y_dev"], LABELS, cfg)
    assert {"prize", "claim"} & {r.keyword for r in rules if r.label == "spam"}
    prior = np.bincount(sms["y_dev"], minlength=2) / len(sms["y_dev"])
    for r in rules:  # every kept phrase cleared the bars on dev, and halves the error of guessing its label
        c = LABELS.index(r.label)
        assert r.dev_hits >= cfg.min_dev_hits and r.fm_support >= cfg.min_support
        assert r.dev_precision >= max(cfg.min_precision, prior[c] + (1 - prior[c]) / 2)
    assert len([r for r in rules if r.label == "ham"]) <= cfg.max_keywords_per_label
    dropped = table[~table["kept"]]
    assert set(dropped["reason"]) >= {"too rare on dev"} and dropped["reason"].str.len().gt(0).all()
    # the kept phrases vote on dev with the precision they were kept for, through one rule per label
    lfs = labeling_functions(rules)
    assert {lf.name for lf in lfs} == {f"fm_{r.label}" for r in rules} and {lf.source for lf in lfs} == {"fm-mined"}
    votes = apply_lfs(lfs, pd.DataFrame({"id": range(len(sms["dev"])), "text": sms["dev"]}), LABELS)
    spam = votes["lf_fm_spam"].to_numpy() == 1
    assert spam.sum() >= 10 and (sms["y_dev"][spam] == 1).mean() >= cfg.min_precision


def test_an_fm_that_knows_nothing_yields_no_rules(sms):
    noise = np.random.default_rng(1).integers(0, 2, len(sms["texts"]))
    rules, table = mine_rules(sms["texts"], noise, sms["dev"], sms["y_dev"], LABELS)
    assert rules == [] and len(table) == 0  # no phrase passes the false-discovery test
    assert mine_rules(sms["texts"][:3], sms["fm"][:3], sms["dev"], sms["y_dev"], LABELS)[0] == []


def test_the_sample_has_a_fixed_size_and_only_train_rows(sms):
    df = sms["df"].assign(split=["train"] * 1500 + ["dev"] * 300)
    votes = np.stack([sms["fm"].tolist() + [-1] * 300] * 3, axis=1)
    small = mine_from_votes(df, votes, LABELS, MiningConfig(sample_size=800))[1]
    full = mine_from_votes(df, votes, LABELS, MiningConfig(sample_size=5000))[1]
    assert 0 < len(small) and small["fm_support"].max() < full["fm_support"].max()
    assert majority_labels(np.array([[0, 1, -1], [1, 1, 0], [-1, -1, -1]]), 2).tolist() == [-1, 1, -1]


def test_exported_rules_are_a_task_yaml_block_that_votes_alike(sms, tmp_path):
    rules, _ = mine_rules(sms["texts"], sms["fm"], sms["dev"], sms["y_dev"], LABELS)
    block = yaml.safe_load(as_task_yaml(rules, "sms_spam"))
    spec = {**shipped_spec("sms_spam"), **block, "fm_rules": {"enabled": False}}
    lfs = task_lfs(load_spec(write_task(tmp_path, "sms_spam", spec)))
    assert [lf.name for lf in lfs] == [f"mined_{lf.label}" for lf in labeling_functions(rules)]
    rows = pd.DataFrame({"id": range(len(sms["dev"])), "text": sms["dev"]})
    reviewed = apply_lfs(lfs, rows, LABELS).to_numpy()
    mined = apply_lfs(labeling_functions(rules), rows, LABELS).to_numpy()
    assert (reviewed == mined).mean() > 0.98  # whole-word regexes vs the miner's tokens: near-identical


def test_the_fm_prefix_is_kept_for_mined_rules(tmp_path):
    spec = shipped_spec("youtube_spam")
    spec["labeling_functions"][0]["name"] = "fm_channel"
    with pytest.raises(SpecError, match="labeling_functions.0.name: 'fm_channel': the prefix 'fm_' is kept"):
        load_spec(write_task(tmp_path, "youtube_spam", spec))
    assert keyword_lf("fm_x", "spam", ["x"]).name == "fm_x"  # the core helper itself does not care


def test_each_label_keeps_its_best_phrases_up_to_the_cap_and_says_why_others_went(sms):
    cfg = MiningConfig(max_keywords_per_label=2)
    rules, table = mine_rules(sms["texts"], sms["fm"], sms["dev"], sms["y_dev"], LABELS, cfg)
    per_label = pd.Series([r.label for r in rules]).value_counts()
    assert per_label.max() <= 2
    reasons = set(table.loc[~table["kept"], "reason"])
    assert "beyond max_keywords_per_label (2)" in reasons
    kept = [r.keyword.split() for r in rules]
    for keyword in table.loc[table["reason"] == "contains a kept phrase", "keyword"]:
        assert any(all(w in keyword.split() for w in k) for k in kept)
