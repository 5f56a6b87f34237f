"""The review loop's core on a real SMS slice: the queue (committee uncertainty, diversity, never test), wrong gold
labels found by cleanlab, the append-only gold store, every bad annotation refused with nothing stored, and
reviewed labels turning into gold in the next run's splits whatever the cap."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.data.splits import PICKED, make_splits, picked_gold, with_reviewed
from fmops_pipelines.errors import DataError
from fmops_pipelines.review.annotations import Annotation, read_csv, to_entries, write_csv
from fmops_pipelines.review.queue import (
    LABEL,
    committee_priority,
    diverse_top,
    diversity_features,
    new_label_rows,
    recheck_rows,
    text_features,
)
from fmops_pipelines.review.store import GoldStore, text_sha
from fmops_pipelines.spec import load_spec
from tests.conftest import small_sms_spec, write_task

LABELS = ["ham", "spam"]


@pytest.fixture(scope="module")
def sms(tmp_path_factory):
    spec = load_spec(write_task(tmp_path_factory.mktemp("assets"), "sms_spam", small_sms_spec()))
    dataset = load_dataset(spec)
    return spec, dataset, make_splits(dataset, spec.splits)


def _tfidf_oof(texts: list[str], y: np.ndarray) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    X = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    return cross_val_predict(LogisticRegression(C=10, class_weight="balanced", max_iter=1000), X, y, cv=5,
                             method="predict_proba")


def test_committee_priority_is_high_where_members_are_unsure_or_split():
    sure = np.array([[0.95, 0.05], [0.9, 0.1], [0.5, 0.5]])
    split = np.array([[0.95, 0.05], [0.1, 0.9], [0.5, 0.5]])
    silent = np.array([[0.9, 0.1], [np.nan, np.nan], [0.5, 0.5]])  # the label model where no labeler voted
    priority, disagree = committee_priority({"specialist": sure, "gold teacher": split, "label model": silent})
    assert priority[1] > priority[0] and priority[2] == pytest.approx(1.0)
    assert list(disagree) == [False, True, False]


def test_a_round_is_spread_over_the_pool_not_fifty_near_duplicates(sms):
    _, _, splits = sms
    pool = splits[splits["split"] == "train"]["text"].tolist()
    spam = splits.loc[splits["label"] == "spam", "text"].iloc[0]
    texts = pool + [f"{spam} {i}" for i in range(40)]  # forty near-copies of one text, all a bit more uncertain
    block = np.arange(len(pool), len(texts))
    priority = np.full(len(texts), 0.5)
    priority[block] = 0.9
    plain = np.argsort(-priority, kind="stable")[:20]
    diverse = diverse_top(priority, text_features(texts, seed=0), budget=20, candidates=10, seed=0)
    assert len(set(diverse)) == 20 and set(plain) <= set(block)
    assert len(set(diverse) & set(block)) <= 2


class _Recording:
    """An embedding FM stand-in that records which texts it was asked to encode."""

    def __init__(self):
        self.asked: list[str] = []

    def embed(self, texts):
        self.asked += texts
        return np.ones((len(texts), 4))


def test_text_features_project_the_n_grams_the_texts_use_not_every_hashed_column(sms):
    """The SVD over only the used columns finds the same spectrum as over all 2**18, without a random projection
    as wide as the hashing space (measured: ~450 MB and ~4 s for 500 texts, the peak of a 67k-row run's queue)."""
    import tracemalloc

    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import HashingVectorizer

    texts = sms[2]["text"].head(500).tolist()
    tracemalloc.start()
    Z = text_features(texts, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert Z.shape == (500, 64) and peak < 60 * 2 ** 20, peak
    full = TruncatedSVD(64, random_state=0).fit(
        HashingVectorizer(ngram_range=(1, 2), n_features=2 ** 18, alternate_sign=False).transform(texts))
    assert np.allclose(np.linalg.norm(Z, axis=0)[:8], full.singular_values_[:8], rtol=1e-3)


def test_the_queue_clusters_on_the_fm_only_within_its_budget(sms):
    _, _, splits = sms
    texts = splits.loc[splits["split"] == "train", "text"].tolist()[:60]
    rows = np.arange(0, 60, 3)
    fm = _Recording()
    assert diversity_features(fm, texts, np.ones(60, dtype=bool), 0)(rows).shape == (20, 4)
    assert fm.asked == [texts[i] for i in rows]
    fm_may_see = np.arange(60) < 30  # fm.budget's sample: the first half
    fm.asked = []
    outside = diversity_features(fm, texts, fm_may_see, 0)(rows)  # some candidates outside it: no FM call at all
    assert fm.asked == [] and np.allclose(outside, text_features([texts[i] for i in rows], 0))
    assert diversity_features(fm, texts, fm_may_see, 0)(rows[rows < 30]).shape == (10, 4) and len(fm.asked) == 10


def test_the_queue_holds_pool_rows_with_reasons_and_never_a_test_row(sms):
    _, _, splits = sms
    pool = splits[splits["split"] == "train"].reset_index(drop=True)
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1], size=len(pool))
    members = {"specialist": p, "label model": np.roll(p, 1, axis=1)}
    queue = new_label_rows(pool, members, text_features(pool["text"].tolist(), 0), LABELS, budget=15, candidates=5)
    assert len(queue) == 15 and (queue["kind"] == LABEL).all()
    assert set(queue["id"]) <= set(pool["id"]) and not set(queue["id"]) & set(splits.loc[splits["split"] == "test", "id"])
    assert queue["reason"].str.contains("committee disagrees|committee unsure").all()
    assert set(queue["prediction"]) <= set(LABELS) and queue["confidence"].between(0.5, 1).all()


def test_flipped_gold_labels_are_found_by_cleanlab_on_out_of_fold_probabilities(sms):
    _, dataset, _ = sms
    rows = dataset[dataset["label"].notna()].drop_duplicates("text").sample(600, random_state=1).reset_index(drop=True)
    flipped = rows.sample(frac=0.05, random_state=2).index
    gold = rows.copy()
    gold.loc[flipped, "label"] = gold.loc[flipped, "label"].map({"ham": "spam", "spam": "ham"})
    y = gold["label"].map({"ham": 0, "spam": 1}).to_numpy()
    found = recheck_rows(gold, _tfidf_oof(gold["text"].tolist(), y), LABELS, limit=len(flipped))
    hits = set(found["id"]) & set(gold.loc[flipped, "id"])
    assert len(found) > 0 and len(hits) / len(found) >= 0.5  # precision at this budget
    assert found["reason"].str.startswith("gold label '").all()
    assert (found["current_label"] != found["prediction"]).all()


def test_the_gold_store_is_append_only_latest_wins_and_the_same_import_twice_adds_nothing(tmp_path, sms):
    _, _, splits = sms
    store = GoldStore(tmp_path / "gold.sqlite")
    pool = splits[splits["split"] == "train"].head(2)
    a = [Annotation(r, "spam", "ann@x", "2026-01-01", 1, "csv", f"k{i}", "f line 2") for i, r in enumerate(pool["id"])]
    assert store.append("sms_spam", to_entries(a, splits, LABELS)) == 2
    assert store.append("sms_spam", to_entries(a, splits, LABELS)) == 0
    changed = [Annotation(pool["id"].iloc[0], "ham", "other@x", "2026-01-02", 2, "csv", "k9", "f line 3")]
    store.append("sms_spam", to_entries(changed, splits, LABELS, store.reviewed("sms_spam")))
    current = store.reviewed("sms_spam").set_index("row_id")
    assert current.at[pool["id"].iloc[0], "label"] == "ham" and current.at[pool["id"].iloc[0], "previous_label"] == "spam"
    assert len(store.entries("sms_spam")) == 3
    with sqlite3.connect(store.path) as con, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE labels SET label = 'spam'")


@pytest.mark.parametrize("label, row, text, message", [
    ("eggs", "pool", None, "label 'eggs' is not one of ham, spam (nothing was imported)"),
    ("Spam", "pool", None, "label 'Spam' is not one of ham, spam (did you mean 'spam'?) (nothing was imported)"),
    ("  ", "pool", None, "empty label"),
    ("spam", "sms-99999", None, "no longer exists"),
    ("spam", "test", None, "is a test row"),
    ("spam", "pool", "a different text", "text changed since it was queued"),
])
def test_a_bad_annotation_stops_the_import_with_one_line_and_stores_nothing(tmp_path, sms, label, row, text, message):
    _, _, splits = sms
    store = GoldStore(tmp_path / "gold.sqlite")
    first = lambda split: splits.loc[splits["split"] == split, "id"].iloc[0]
    good = Annotation(first("train"), "ham", "a", "t", 1, "csv", "good", "r.csv line 2")
    bad_id = first("train") if row == "pool" else first("test") if row == "test" else row
    bad = Annotation(splits.loc[splits["split"] == "train", "id"].iloc[1] if row == "pool" else bad_id, label, "a",
                     "t", 1, "csv", "bad", "r.csv line 3", text)
    with pytest.raises(DataError) as err:
        store.append("sms_spam", to_entries([good, bad], splits, LABELS))
    assert message in str(err.value) and str(err.value).startswith("r.csv line 3: ") and "\n" not in str(err.value)
    assert store.count("sms_spam") == 0


def test_a_csv_round_trips_and_unlabelled_rows_are_skipped(tmp_path, sms):
    _, _, splits = sms
    pool = splits[splits["split"] == "train"].head(3)
    queue = pd.DataFrame({"id": pool["id"], "text": pool["text"], "kind": LABEL, "reason": "r", "prediction": "ham",
                          "confidence": np.float32(0.462), "current_label": None, "round": 4})
    path = tmp_path / "round.csv"
    write_csv(queue, path)
    filled = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert (filled["confidence"] == "0.4620").all() and (filled["round"] == "4").all()  # as a person reads them
    filled.loc[0, "label"], filled.loc[1, "label"], filled.loc[1, "annotator"] = "spam", "ham", "kim@x"
    filled.to_csv(path, index=False)
    got = read_csv(path)
    assert [(a.row_id, a.label, a.round) for a in got] == [(pool["id"].iloc[0], "spam", 4), (pool["id"].iloc[1], "ham", 4)]
    assert got[1].annotator == "kim@x" and got[0].where == "round.csv line 2"
    assert len(to_entries(got, splits, LABELS)) == 2
    with pytest.raises(DataError, match="no 'label' column"):
        pool[["id", "text"]].to_csv(path, index=False)
        read_csv(path)


def test_reviewed_labels_are_gold_in_the_next_splits_whatever_the_cap_and_test_never_changes(sms):
    _, dataset, splits = sms
    pool_id = splits.loc[splits["split"] == "train", "id"].iloc[0]
    gold_row = splits[splits["split"] == "dev"].iloc[0]
    flipped = "spam" if gold_row["label"] == "ham" else "ham"
    test_row = splits[splits["split"] == "test"].iloc[0]
    text = dict(zip(dataset["id"], dataset["text"]))
    reviewed = pd.DataFrame({"row_id": [pool_id, gold_row["id"], test_row["id"], "sms-00001"],
                             "text_sha": [text_sha(text[pool_id]), text_sha(gold_row["text"]),
                                          text_sha(test_row["text"]), "0" * 16],
                             "label": ["spam", flipped, "ham", "spam"]})
    out, counts = with_reviewed(splits, dataset, reviewed)
    row = out.set_index("id")
    assert row.at[pool_id, "split"] == "dev" and row.at[pool_id, "label"] == "spam"
    assert row.at[gold_row["id"], "label"] == flipped
    assert row.at[test_row["id"], "split"] == "test" and row.at[test_row["id"], "label"] == test_row["label"]
    assert counts == {"reviewed_rows": 2, "reviewed_stale": 1, "reviewed_missing": 0, "reviewed_in_test": 1}
    assert (out["split"] == "dev").sum() >= (splits["split"] == "dev").sum() + 1  # above the spec's gold cap
    assert set(out.loc[out["split"] == "test", "id"]) == set(splits.loc[splits["split"] == "test", "id"])
    assert PICKED not in out.columns and picked_gold(out) is None  # nothing a queue chose
    marked, _ = with_reviewed(splits, dataset, reviewed, frozenset({pool_id, gold_row["id"]}))
    row = marked.set_index("id")
    assert row.at[pool_id, PICKED] and not row.at[gold_row["id"], PICKED]  # a re-checked gold row stays a sample
    assert picked_gold(marked).sum() == row.loc[row["split"] == "dev", PICKED].sum() >= 1
