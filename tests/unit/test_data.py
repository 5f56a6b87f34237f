import pandas as pd
import pytest

from fmops_pipelines.data import registry
from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.data.splits import class_balance, make_splits, split_summary
from fmops_pipelines.errors import DataError
from fmops_pipelines.spec import SplitSpec, load_spec
from tests.conftest import shipped_spec, write_task


@pytest.fixture(scope="module")
def sms(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    return load_dataset(load_spec(write_task(root, "sms_spam", shipped_spec("sms_spam"))))


def test_registry_files_verify_against_pinned_sha256():
    for name in registry.REGISTRY:
        assert all(p.exists() for p in registry.fetch(name))


def test_checksum_mismatch_is_one_line_naming_the_file(copy_of_dataset):
    home = copy_of_dataset("sms_spam_uci/SMSSpamCollection")
    path = home / "sms_spam_uci" / "SMSSpamCollection"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"SMSSpamCollection: checksum mismatch: expected sha256 7d039a"):
        registry.fetch("sms_spam_uci", home)


def test_missing_file_that_cannot_be_downloaded(tmp_path, monkeypatch):
    pinned = registry.PinnedFile("x/data.csv", "http://127.0.0.1:9/data.csv", "0" * 64)
    monkeypatch.setitem(registry.REGISTRY, "x", registry.RegistryDataset("x", (pinned,), "read_sms_spam", ""))
    with pytest.raises(DataError, match="not in the data home and download of http://127.0.0.1:9/data.csv failed"):
        registry.fetch("x", tmp_path)
    assert not (tmp_path / "x").exists()


def test_sms_reader_matches_the_published_counts(sms):
    assert len(sms) == 5574
    assert sms["label"].value_counts().to_dict() == {"ham": 4827, "spam": 747}
    assert sms["id"].is_unique


def test_youtube_and_ag_news_readers(tmp_path):
    yt = load_dataset(load_spec(write_task(tmp_path, "youtube_spam", shipped_spec("youtube_spam"))))
    assert len(yt) == 1956 and yt["label"].value_counts().to_dict() == {"spam": 1005, "ham": 951}
    assert not yt["text"].str.contains("\ufeff").any() and yt["id"].is_unique
    ag = load_dataset(load_spec(write_task(tmp_path, "ag_news", shipped_spec("ag_news"))))
    assert len(ag) == 7600 and set(ag["label"].value_counts()) == {1900}
    assert not ag["text"].str.contains("#36;").any()
    assert ag["text"].str.contains(r"\$10 million").any()


def _local_spec(root, csv_text: str, **dataset):
    (root / "mine").mkdir(parents=True)
    (root / "mine" / "data.csv").write_text(csv_text)
    spec = shipped_spec("sms_spam") | {"dataset": {"path": "data.csv", **dataset}}
    return load_spec(write_task(root, "mine", spec))


def test_local_csv(tmp_path):
    df = load_dataset(_local_spec(tmp_path, "body,y\nwin cash now,spam\nsee you at 5,ham\n", text_column="body",
                                  label_column="y"))
    assert df[["text", "label"]].values.tolist() == [["win cash now", "spam"], ["see you at 5", "ham"]]


@pytest.mark.parametrize(
    ("csv_text", "dataset", "message"),
    [
        ("body,y\nhi,ham\n", {}, r"data.csv: missing column 'text' \(dataset.text_column\)"),
        ("text,label\n", {}, "data.csv: dataset is empty"),
        ("text,label\nhi,ham\nbuy,eggs\n", {}, "row id=row-000001: label 'eggs' is not one of"),
        ("text,label\nhi,ham\n ,spam\n", {}, "row id=row-000001: empty text"),
    ],
)
def test_bad_local_data_is_one_line(tmp_path, csv_text, dataset, message):
    with pytest.raises(DataError, match=message) as info:
        load_dataset(_local_spec(tmp_path, csv_text, **dataset))
    assert "\n" not in str(info.value)


def test_splits_are_disjoint_by_text_and_hide_train_labels(sms):
    splits = make_splits(sms, SplitSpec(dev_size=200, test_fraction=0.2, seed=0))
    summary = split_summary(splits)
    assert summary["dev"]["rows"] >= 200 and summary["dev"]["rows"] < 220  # duplicates follow their text
    assert 0.2 * sms["text"].nunique() - 1 <= summary["test"]["rows"] <= 0.2 * len(sms) + 1
    texts = {name: set(splits.loc[splits["split"] == name, "text"]) for name in ("train", "dev", "test")}
    assert not texts["train"] & texts["test"] and not texts["dev"] & texts["test"] and not texts["train"] & texts["dev"]
    assert splits.loc[splits["split"] == "train", "label"].isna().all()
    assert splits.loc[splits["split"] != "train", "label"].notna().all()
    assert splits.equals(make_splits(sms, SplitSpec(dev_size=200, test_fraction=0.2, seed=0)))


def test_class_balance_is_smoothed():
    balance = class_balance(pd.Series(["ham"] * 8), ["ham", "spam"])
    assert balance[1] > 0 and abs(balance.sum() - 1) < 1e-9


