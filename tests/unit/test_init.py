"""`fmops init`: a spec drafted from a user's file that no shipped spec knows (SST-2 phrases, converted here),
the columns found by name or by content, and bad input as one line with nothing written."""

import re
import subprocess
import sys

import pytest

from fmops_pipelines.cli import main
from fmops_pipelines.spec import get_spec
from tests.conftest import sst2_reviews as reviews


def test_init_finds_the_columns_and_writes_a_spec_that_loads(assets_dir, tmp_path, capsys):
    reviews().to_csv(tmp_path / "reviews.csv", index=False)
    assert main(["init", "movie_reviews", "--data", str(tmp_path / "reviews.csv")]) == 0
    out = capsys.readouterr().out
    assert "text column 'review', label column 'sentiment', id column 'review_id'" in out
    assert "fmops run movie_reviews" in out and "300 unlabelled rows" in out and "note:" not in out
    spec = get_spec("movie_reviews")
    assert spec.label_names == ["negative", "positive"]
    assert (spec.dataset.text_column, spec.dataset.label_column, spec.dataset.id_column) == ("review", "sentiment",
                                                                                           "review_id")
    assert spec.splits.dev_size is None  # unlabelled rows to learn from: every labelled row outside test is gold
    raw = (assets_dir / "movie_reviews" / "task.yaml").read_text()
    assert "LOOK" in raw and len(re.findall(r"# \d+ labelled rows", raw)) == 2  # what to look at, label counts


def test_init_finds_a_split_column_named_as_hugging_face_names_its_splits(assets_dir, tmp_path, capsys):
    frame = reviews()
    frame["split"] = ["test" if i % 4 == 0 else "validation" for i in range(len(frame))]
    frame.loc[frame["sentiment"] == "", "split"] = "train"
    frame.to_csv(tmp_path / "hf.csv", index=False)
    assert main(["init", "hf", "--data", str(tmp_path / "hf.csv")]) == 0
    assert "split column 'split'" in capsys.readouterr().out
    assert get_spec("hf").dataset.split_column == "split"


def test_init_takes_the_columns_and_the_label_set_as_given_in_parquet(assets_dir, tmp_path, capsys):
    frame = reviews().rename(columns={"review": "body_text", "sentiment": "y_true"})
    frame.to_parquet(tmp_path / "r.parquet")
    assert main(["init", "r", "--data", str(tmp_path / "r.parquet"), "--text-column", "body_text",
                 "--label-column", "y_true", "--labels", "positive,negative,neutral"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and notes[0].startswith("note: neutral has 0 labelled rows: the gold teacher")
    spec = get_spec("r")
    assert spec.label_names == ["positive", "negative", "neutral"]  # the order given, a label with no rows yet
    assert spec.dataset.text_column == "body_text"


@pytest.mark.parametrize("change, args, says", [
    (lambda f: f.drop(columns=["review"]).assign(note="ok"), [], "no text column found"),
    (lambda f: f.assign(sentiment=lambda d: d["sentiment"].replace("negative", "positive")), [],
     "holds 1 label(s) ['positive']"),
    (lambda f: f.assign(sentiment=""), ["--label-column", "sentiment"], "only 0 labelled rows"),
    (lambda f: f, ["--labels", "pos,neg"], "label 'negative' in column 'sentiment' is not one of --labels"),
    (lambda f: f, ["--text-column", "nope"], "no column 'nope' (--text-column)"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(assets_dir, tmp_path, change, args, says):
    change(reviews()).to_csv(tmp_path / "in.csv", index=False)
    result = subprocess.run([sys.executable, "-m", "fmops_pipelines.cli", "init", "t", "--data",
                             str(tmp_path / "in.csv"), *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'in.csv'}: ") and says in line, line
    assert not any(assets_dir.iterdir())


def test_an_unreadable_file_and_an_existing_task_are_refused(assets_dir, tmp_path, capsys):
    (tmp_path / "bad.csv").write_bytes(b"text,label\n\xff\xfe broken,a\n")
    assert main(["init", "t", "--data", str(tmp_path / "bad.csv")]) == 2
    assert "line 2 is not UTF-8" in capsys.readouterr().err
    reviews().to_csv(tmp_path / "ok.csv", index=False)
    assert main(["init", "t", "--data", str(tmp_path / "ok.csv")]) == 0
    before = (assets_dir / "t" / "task.yaml").read_text()
    assert main(["init", "t", "--data", str(tmp_path / "ok.csv")]) == 2
    assert "task 't' exists already" in capsys.readouterr().err
    assert (assets_dir / "t" / "task.yaml").read_text() == before
    assert main(["init", "Bad-Name", "--data", str(tmp_path / "ok.csv")]) == 2


def test_fmops_alone_lists_the_commands_one_line_each_and_version(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    commands = [line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.strip()]
    assert {"init", "run", "evaluate", "predict", "ui"} <= set(commands)
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("fmops ")


def test_unlabelled_data_plus_a_gold_file(assets_dir, tmp_path, capsys):
    """Text without labels and a separate file of labelled rows: the spec names both (dataset.gold_files); the
    dataset joins them, the gold rows alone labelled, and the splits draw dev and test from those."""
    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.data.splits import make_splits

    frame = reviews(rows=700, labelled=300)
    frame.iloc[300:][["review"]].to_csv(tmp_path / "pool.csv", index=False)  # no label column at all
    frame.iloc[:300][["review", "sentiment"]].to_json(tmp_path / "gold.jsonl", orient="records", lines=True)
    assert main(["init", "mixed", "--data", str(tmp_path / "pool.csv"), "--gold", str(tmp_path / "gold.jsonl")]) == 0
    assert "400 unlabelled rows" in capsys.readouterr().out
    spec = get_spec("mixed")
    assert spec.dataset.gold_files and spec.label_names == ["negative", "positive"]
    df = load_dataset(spec)
    assert len(df) == 700 and df["label"].notna().sum() == 300
    assert df.loc[df["label"].notna(), "id"].str.startswith("gold0-").all() and df["id"].is_unique
    splits = make_splits(df, spec.splits)
    assert splits.loc[splits["split"] != "train", "label"].notna().all()
    assert (splits["split"] == "dev").sum() == (splits["label"].notna() & (splits["split"] != "test")).sum() > 200
    (tmp_path / "bad_gold.csv").write_text("review,sentiment\n" + "a fine film,positive\n" * 50 + "odd one,meh\n")
    assert main(["init", "mixed2", "--data", str(tmp_path / "pool.csv"), "--gold", str(tmp_path / "bad_gold.csv"),
                 "--labels", "negative,positive"]) == 2
    assert f"{tmp_path / 'bad_gold.csv'}: row 52: label 'meh'" in capsys.readouterr().err


def test_a_fully_labelled_file_gets_a_gold_cap_that_leaves_a_pool_to_learn_from(assets_dir, tmp_path):
    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.data.splits import make_splits, require_pool

    reviews(rows=400, labelled=400).to_csv(tmp_path / "all.csv", index=False)
    assert main(["init", "labelled", "--data", str(tmp_path / "all.csv")]) == 0
    spec = get_spec("labelled")
    assert spec.splits.dev_size == 160  # half the 320 labelled rows outside test
    splits = make_splits(load_dataset(spec), spec.splits)
    require_pool(splits)
    assert (splits["split"] == "train").sum() > 100 and splits.loc[splits["split"] == "train", "label"].isna().all()
