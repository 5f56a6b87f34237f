import pandas as pd
import pytest

from fmops_pipelines.data import registry
from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.data.splits import class_balance, declared_splits, make_splits, split_summary
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
        ("text,label\nhi,ham\nbuy,eggs\n", {},
         r"row id=row-000001: label 'eggs' in column 'label' \(dataset.label_column\) is not one of"),
        ("text,label\nhi,ham\n ,spam\n", {}, "row id=row-000001: empty text"),
    ],
)
def test_bad_local_data_is_one_line(tmp_path, csv_text, dataset, message):
    with pytest.raises(DataError, match=message) as info:
        load_dataset(_local_spec(tmp_path, csv_text, **dataset))
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{(tmp_path / 'mine' / 'data.csv').resolve()}: ")  # the file, wherever it is


def test_a_tab_separated_file_reads_as_its_csv_would_and_a_file_split_otherwise_is_named(tmp_path):
    (tmp_path / "mine").mkdir(parents=True)
    rows = "text\tlabel\nwin cash, now\tspam\n\"see you\tat 5\"\tham\n"
    (tmp_path / "mine" / "data.tsv").write_text(rows)
    spec = load_spec(write_task(tmp_path, "mine", shipped_spec("sms_spam") | {"dataset": {"path": "data.tsv"}}))
    df = load_dataset(spec)
    assert df[["text", "label"]].values.tolist() == [["win cash, now", "spam"], ["see you\tat 5", "ham"]]
    (tmp_path / "mine" / "data.csv").write_text("text;label\nwin cash now;spam\n")
    spec = load_spec(write_task(tmp_path, "mine", shipped_spec("sms_spam") | {"dataset": {"path": "data.csv"}}))
    with pytest.raises(DataError, match=r"data.csv: the header is one column 'text;label': fmops reads .csv files "
                                        r"separated by commas, and this one looks separated by semicolons"):
        load_dataset(spec)


def test_an_unlabelled_copy_of_a_gold_or_test_text_takes_its_label():
    """SST-2's phrases repeat: a text labelled once and exported again without a label lands in the labelled
    row's split, and in gold or test it carries that label (the evaluation reads every test row's label)."""
    from tests.conftest import sst2_reviews

    data = sst2_reviews(rows=600, labelled=300)
    df = pd.DataFrame({"id": data["review_id"], "text": data["review"], "label": data["sentiment"].replace("", None)})
    copies = df.head(300).assign(id=lambda d: d["id"] + "-copy", label=None)  # every labelled text, unlabelled
    splits = make_splits(pd.concat([df, copies], ignore_index=True), SplitSpec(dev_size=100, test_fraction=0.3))
    held = splits[splits["split"] != "train"]
    assert held["id"].str.endswith("-copy").sum() >= 150
    assert held["label"].notna().all()
    by_text = held.groupby("text")["label"].nunique()
    assert (by_text == 1).all()


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




def _declared(tmp_path, sms, splits: list[str], **dataset):
    """A slice of the real SMS data as a user's CSV with its own split column."""
    (tmp_path / "mine").mkdir(exist_ok=True)
    rows = sms.head(len(splits)).assign(part=splits)
    rows.loc[rows["part"] == "train", "label"] = ""  # the user's train rows are unlabelled
    rows[["id", "text", "label", "part"]].to_csv(tmp_path / "mine" / "data.csv", index=False)
    spec = shipped_spec("sms_spam") | {"dataset": {"path": "data.csv", "id_column": "id", "split_column": "part",
                                                   **dataset}}
    spec["splits"] = {"dev_size": 40, "seed": 0}
    return load_spec(write_task(tmp_path, "mine", spec))


def test_declared_test_rows_are_the_test_split_and_their_texts_leave_train_and_dev(tmp_path, sms):
    parts = ["test"] * 150 + ["dev"] * 100 + ["train"] * 400
    spec = _declared(tmp_path, sms, parts)
    df = load_dataset(spec)
    test_texts = set(df.loc[df["part"] == "test", "text"])
    repeats = df[(df["part"] != "test") & df["text"].isin(test_texts)]
    assert len(repeats) > 0  # SMS repeats some texts: these must not reach train or dev
    out, counts = declared_splits(df, spec.splits, "part")
    assert counts == {"dropped_as_in_test": len(repeats)}
    assert sorted(out.loc[out["split"] == "test", "id"]) == sorted(df.loc[df["part"] == "test", "id"])  # as declared
    dev = out[out["split"] == "dev"]
    assert 40 <= len(dev) < 50 and set(dev["id"]) <= set(df.loc[df["part"] == "dev", "id"]) and dev["label"].notna().all()
    train = out[out["split"] == "train"]
    assert train["label"].isna().all() and not set(train["text"]) & test_texts and not set(dev["text"]) & test_texts
    assert len(out) == len(df) - len(repeats)  # declared dev beyond dev_size joins train, unlabelled
    assert out.equals(declared_splits(df, spec.splits, "part")[0])


def test_other_tools_split_names_are_read_as_fmops_s(tmp_path, sms):
    """Hugging Face datasets say validation, WRENCH valid: the dev split, as declared."""
    parts = [" TEST "] * 100 + ["Validation"] * 50 + ["val"] * 50 + ["training"] * 300
    df = load_dataset(_declared(tmp_path, sms, parts))
    assert df["part"].tolist() == ["test"] * 100 + ["dev"] * 100 + ["train"] * 300


def test_without_declared_dev_the_dev_rows_come_from_labelled_train(tmp_path, sms):
    spec = _declared(tmp_path, sms, ["test"] * 100 + ["train"] * 300)
    df = load_dataset(spec)
    df.loc[df.index[100:200], "label"] = sms["label"].iloc[100:200].to_numpy()  # some labelled train rows
    out, _ = declared_splits(df, spec.splits, "part")
    dev = out[out["split"] == "dev"]
    assert len(dev) >= 40 and set(dev["text"]) <= set(df["text"].iloc[100:200])  # and their duplicates


def test_the_wrench_registry_splits_can_be_declared(tmp_path):
    spec = shipped_spec("sms_spam") | {"dataset": {"registry": "wrench_sms", "split_column": "split"}}
    spec = load_spec(write_task(tmp_path, "wsms", spec))
    df = load_dataset(spec)
    out, _ = declared_splits(df, spec.splits, "split")
    assert sorted(out.loc[out["split"] == "test", "id"]) == sorted(df.loc[df["split"] == "test", "id"])


@pytest.mark.parametrize(("parts", "dataset", "message"), [
    (["train"] * 60, {}, r"data.csv: column 'part' \(dataset.split_column\) declares no test rows"),
    (["test"] * 30 + ["holdout"] * 30, {}, (r"data.csv: column 'part' \(dataset.split_column\), row id=sms-00030: "
                                            r"'holdout' is not one of \['train', 'dev', 'test'\] \(or validation / "
                                            r"valid / val for dev\)")),
    (["test"] * 30 + ["train"] * 30, {"split_column": "fold"}, r"data.csv: dataset.split_column: no column 'fold'"),
    (["test"] * 30 + ["train"] * 30, {"label_map": {"ham": "eggs"}},
     r"data.csv: row id=sms-00000: label 'eggs' in column 'label' \(dataset.label_column\)"),
])
def test_bad_declared_splits_are_one_line(tmp_path, sms, parts, dataset, message):
    with pytest.raises(DataError, match=message) as info:
        load_dataset(_declared(tmp_path, sms, parts, **dataset))
    assert "\n" not in str(info.value)


def test_a_declared_test_row_without_gold_is_one_line(tmp_path, sms):
    spec = _declared(tmp_path, sms, ["test"] * 30 + ["train"] * 30)
    path = tmp_path / "mine" / "data.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[3, "label"] = ""
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"row id=sms-00003: a declared test row has no gold label \(1 such rows\)"):
        load_dataset(spec)


def test_one_file_per_split_declares_the_splits(tmp_path, sms):
    (tmp_path / "mine").mkdir()
    sms.iloc[:100][["text", "label"]].to_csv(tmp_path / "mine" / "test.csv", index=False)
    sms.iloc[100:160][["text", "label"]].to_csv(tmp_path / "mine" / "dev.csv", index=False)
    sms.iloc[160:400][["text"]].assign(label="").to_csv(tmp_path / "mine" / "train.csv", index=False)
    spec = shipped_spec("sms_spam") | {"dataset": {"path": "train.csv",
                                                   "split_files": {"test": "test.csv", "dev": "dev.csv"}}}
    spec["splits"] = {"dev_size": 40}
    spec = load_spec(write_task(tmp_path, "mine", spec))
    df = load_dataset(spec)
    assert df["id"].is_unique and df["split"].value_counts().to_dict() == {"train": 240, "test": 100, "dev": 60}
    out, _ = declared_splits(df, spec.splits, spec.dataset.declared_split_column)
    assert sorted(out.loc[out["split"] == "test", "text"]) == sorted(sms["text"].iloc[:100])
    (tmp_path / "mine" / "test.csv").write_text("text,label\nhello,\n")
    with pytest.raises(DataError, match=r"train.csv \(\+ test.csv, dev.csv\): column 'split' \(dataset.split_column\)"
                                        r", row id=test-row-000000: a declared test row has no gold label"):
        load_dataset(spec)


def test_the_splits_asset_uses_the_declared_split_and_reports_what_it_dropped(tmp_path, sms):
    import dagster as dg

    from fmops_pipelines.defs.resources import resources
    from fmops_pipelines.launcher import stored
    from fmops_pipelines.stages import task_definitions

    spec = _declared(tmp_path, sms, ["test"] * 150 + ["dev"] * 100 + ["train"] * 400)
    keys = [dg.AssetKey(["mine", "dataset"]), dg.AssetKey(["mine", "splits"])]
    result = dg.materialize(task_definitions(spec).assets, selection=keys, resources=resources().resources)
    assert result.success
    splits = stored("mine", "splits")
    assert sorted(splits.loc[splits["split"] == "test", "id"]) == [f"sms-{i:05d}" for i in range(150)]
    metadata = result.asset_materializations_for_node("mine__splits")[0].metadata
    assert metadata["declared_by"].value == "part" and metadata["dropped_as_in_test"].value > 0
