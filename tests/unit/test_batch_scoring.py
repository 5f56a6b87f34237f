"""Streamed scoring on a real SMS slice: same answers as the in-memory model, lineage on every row, atomic
outputs, one-line errors for bad files, drift that fires on a shifted input only, the tuner's space and cache."""

import json

import numpy as np
import pandas as pd
import pytest

from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.errors import DataError
from fmops_pipelines.inference.drift import assess_drift, psi, reference_profile
from fmops_pipelines.inference.engine import score_file
from fmops_pipelines.inference.ledger import task_costs
from fmops_pipelines.inference.lineage import Lineage
from fmops_pipelines.inference.scorers import Settings
from fmops_pipelines.inference.sinks import read_footer
from fmops_pipelines.inference.tuning import Overrides, candidates, tuned_settings
from fmops_pipelines.specialist.ngram import NgramConfig, train_ngram
from fmops_pipelines.specialist.ngram_scorer import NgramScorer
from fmops_pipelines.specialist.training_loop import TrainConfig
from tests.conftest import sms_student_data

LINEAGE = Lineage("sms_spam-specialist", "7", "snorkel", "abc123", "day-1.csv", "run-42")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small n-gram student, its numpy export, and the slice's train / test frames."""
    d = sms_student_data(tmp_path_factory.mktemp("assets"))
    model, _ = train_ngram(NgramConfig(labels=d["labels"]), TrainConfig(epochs=4, patience=4, learning_rate=0.01,
                                                                        batch_size=32),
                           d["texts"], d["soft"], d["dev"], d["y_dev"])
    scorer = NgramScorer.load(NgramScorer.export(model, tmp_path_factory.mktemp("bundle") / "model"))
    return model, scorer, d


def _inputs(d: dict, tmp_path, n: int = 500) -> tuple[pd.DataFrame, object]:
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "text": (d["texts"] * 3)[:n], "extra": "x"})
    frame.loc[3, "text"] = ""  # an empty message is a row like any other
    path = tmp_path / "in.csv"
    frame.to_csv(path, index=False)
    return frame, path


@pytest.mark.parametrize("settings", [Settings(batch_size=64, workers=1), Settings(batch_size=50, workers=2)])
def test_streaming_matches_the_in_memory_model_with_lineage(trained, tmp_path, settings):
    model, scorer, d = trained
    frame, source = _inputs(d, tmp_path)
    stats = score_file(scorer, source, tmp_path / "out.parquet", LINEAGE, settings)
    out = pd.read_parquet(tmp_path / "out.parquet")
    expected = model.predict_proba(frame["text"].tolist())  # the torch model, all rows at once
    assert stats.rows == len(frame) == len(out)
    assert out["id"].tolist() == frame["id"].tolist() and (out["extra"] == "x").all()
    assert np.allclose(out[["p_ham", "p_spam"]].to_numpy(), expected, atol=1e-5)
    assert out["label"].astype(str).tolist() == [d["labels"][i] for i in expected.argmax(axis=1)]
    lineage = {c: out[c].astype(str).unique().tolist() for c in out.columns if c.startswith("fmops_")}
    assert lineage == {"fmops_model": ["sms_spam-specialist"], "fmops_model_version": ["7"],
                       "fmops_label_model": ["snorkel"], "fmops_labelers_fingerprint": ["abc123"],
                       "fmops_partition": ["day-1.csv"], "fmops_run_id": ["run-42"]}
    footer = read_footer(tmp_path / "out.parquet")
    assert footer["fmops.model_version"] == "7" and footer["fmops.rows"] == str(len(frame))


def test_texts_that_span_lines_are_one_row_each_across_the_reader_s_blocks(trained, tmp_path):
    """Quoted texts with newlines (emails, reviews) in a CSV larger than one read block: every row scored, each
    text whole (such a file stopped with "CSV parser got out of sync with chunker")."""
    from fmops_pipelines.inference.sources import BLOCK_BYTES

    _, scorer, d = trained
    texts = [f"{t}\n\nsecond paragraph, \"quoted\", row {i}" for i, t in enumerate((d["texts"] * 40)[:8000])]
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "text": texts})
    frame.to_csv(tmp_path / "mail.csv", index=False)
    assert (tmp_path / "mail.csv").stat().st_size > 3 * BLOCK_BYTES
    stats = score_file(scorer, tmp_path / "mail.csv", tmp_path / "out.parquet", LINEAGE, Settings(batch_size=256))
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert stats.rows == len(frame) and out["text"].tolist() == texts


def test_an_output_path_that_is_the_input_file_is_refused_and_the_input_kept(trained, tmp_path):
    _, scorer, d = trained
    _, source = _inputs(d, tmp_path, n=50)
    before = source.read_bytes()
    (tmp_path / "link.csv").symlink_to(source)
    for target in (source, tmp_path / "link.csv", tmp_path / "." / "in.csv"):
        with pytest.raises(DataError, match="the output is the input file"):
            score_file(scorer, source, target, LINEAGE, Settings(batch_size=16))
    assert source.read_bytes() == before


def test_a_tab_separated_input_scores_as_its_csv_does(trained, tmp_path):
    _, scorer, d = trained
    frame, source = _inputs(d, tmp_path, n=200)
    frame.to_csv(tmp_path / "in.tsv", index=False, sep="\t")
    score_file(scorer, source, tmp_path / "csv.parquet", LINEAGE, Settings(batch_size=64))
    score_file(scorer, tmp_path / "in.tsv", tmp_path / "tsv.parquet", LINEAGE, Settings(batch_size=64))
    assert pd.read_parquet(tmp_path / "tsv.parquet").equals(pd.read_parquet(tmp_path / "csv.parquet"))


def test_csv_and_jsonl_outputs_and_columns_the_input_already_has(trained, tmp_path):
    _, scorer, d = trained
    pd.DataFrame({"text": d["texts"][:20], "label": "gold"}).to_json(tmp_path / "in.jsonl", orient="records",
                                                                      lines=True)
    score_file(scorer, tmp_path / "in.jsonl", tmp_path / "out.csv", LINEAGE, Settings(batch_size=8))
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 20 and (out["label"] == "gold").all()  # the user's column is kept...
    assert set(out["predicted_label"]) <= set(d["labels"])  # ...and the prediction does not clobber it
    score_file(scorer, tmp_path / "in.jsonl", tmp_path / "out.jsonl", LINEAGE, Settings(batch_size=8))
    assert len(pd.read_json(tmp_path / "out.jsonl", lines=True)) == 20


def test_a_bad_row_late_in_the_file_leaves_the_previous_output_untouched(trained, tmp_path):
    _, scorer, d = trained
    _, source = _inputs(d, tmp_path, n=400)
    target = tmp_path / "out.parquet"
    score_file(scorer, source, target, LINEAGE, Settings(batch_size=32))
    before = target.read_bytes()
    lines = source.read_text().splitlines()
    lines.insert(390, 'r-bad,"unterminated,x,y')  # after several batches were already written
    lines.insert(391, "r-bad2,too,many,fields,here")
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        score_file(scorer, source, target, LINEAGE, Settings(batch_size=32))
    assert str(err.value).startswith(f"{source}: line ") and "fields" in str(err.value)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


@pytest.mark.parametrize("name,content,reason", [
    ("no_text.csv", b"message\nhello\n", ("missing column 'text'; columns are ['message'] (name the text column "
                                          "with inference.text_column, or fmops predict --text-column)")),
    ("empty.csv", b"", "empty file"),
    ("header_only.csv", b"text\n", "no rows to predict"),
    ("latin1.csv", "text\nok\ncaf\u00e9 au lait\n".encode("latin-1"), "line 3: not valid UTF-8 text"),
    ("fake.parquet", b"text\nhello\n", "not a Parquet file"),
    ("broken.jsonl", b'{"text": "a"}\n{"text": \n', "line 2: not a JSON object"),
    ("number.jsonl", b'{"text": "a"}\n{"text": 12}\n', "line 2: 'text' is 12, not a string (write it in quotes)"),
    ("unclosed.csv", b'id,text\n1,first\n2,"never closed, ""so"" the rest\n3,third\n4,fourth\n',
     "line 3: a quoted field opens there and is never closed"),
    ("notes.txt", b"text\nhello\n", "unsupported format '.txt'"),
])
def test_bad_inputs_fail_with_one_line_naming_the_file(trained, tmp_path, name, content, reason):
    _, scorer, _ = trained
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as err:
        score_file(scorer, tmp_path / name, tmp_path / "out.parquet", LINEAGE, Settings(batch_size=16))
    message = str(err.value)
    assert message.startswith(f"{tmp_path / name}: ") and reason in message and "\n" not in message
    assert list(tmp_path.iterdir()) == [tmp_path / name]  # no output, no temporary


def test_drift_fires_on_a_shifted_input_and_stays_quiet_on_an_unshifted_one(trained, tmp_path):
    _, scorer, d = trained
    reference = reference_profile(scorer.predict_proba(d["test"]))  # what evaluation records for the champion
    rows = load_dataset(d["spec"].model_copy(update={"splits": d["spec"].splits.model_copy(update={"max_rows": None})}))
    seen = set(d["texts"]) | set(d["dev"]) | set(d["test"])
    unseen = rows.loc[~rows["text"].isin(seen)]
    unshifted = unseen[["text"]].sample(2000, random_state=0)  # rows the model never saw, from the same source
    spam_only = unseen.loc[unseen["label"] == "spam", ["text"]].head(300)  # a spam wave
    results = {}
    for name, frame in (("unshifted", unshifted), ("shifted", spam_only)):
        frame.to_parquet(tmp_path / f"{name}.parquet")
        stats = score_file(scorer, tmp_path / f"{name}.parquet", tmp_path / f"{name}-out.parquet", LINEAGE,
                           Settings(batch_size=128))
        results[name] = assess_drift(stats.profile(), reference, max_psi=0.2, max_confidence_drop=0.1)
    assert results["unshifted"]["checked"] and not results["unshifted"]["drifted"]
    assert results["unshifted"]["class_psi"] < 0.1 and abs(results["unshifted"]["confidence_drop"]) < 0.05
    assert results["shifted"]["drifted"] and results["shifted"]["class_psi"] > 1.0
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert assess_drift(reference, None, 0.2) == {"checked": False, "drifted": False, "reason": (
        "the champion has no reference profile (evaluated before fmops recorded one)")}
    assert not assess_drift({**reference, "n": 99}, reference, 0.2, min_rows=100)["checked"]


def test_tuner_space_overrides_and_cache(trained, tmp_path, monkeypatch):
    _, scorer, d = trained
    monkeypatch.setenv("FMOPS_HOME", str(tmp_path / "home"))
    space = candidates("ngram", True, "cpu", Overrides())
    assert {s.batch_size for s in space} == {1024, 4096, 16384} and min(s.workers for s in space) == 1
    assert {(s.batch_size, s.workers) for s in candidates("ngram", True, "cpu", Overrides(batch_size=512))} <= {
        (512, w) for w in (1, 2, 3, 4, 8, 16, 32, 64)}
    assert all(s.workers == 1 for s in candidates("encoder", False, "cpu", Overrides()))

    sample = pd.DataFrame({"text": d["texts"][:300]})
    calls = []

    def make_sample():
        import pyarrow as pa

        calls.append(1)
        return pa.RecordBatch.from_pandas(sample, preserve_index=False)

    fixed = Overrides(batch_size=128)
    first = tuned_settings("sms_spam", "7", scorer, make_sample, "text", "cpu", fixed)
    again = tuned_settings("sms_spam", "7", scorer, make_sample, "text", "cpu", fixed)
    assert first.how == "measured" and again.how == "cached" and calls == [1]  # measured once per (version, machine)
    assert again.settings == first.settings and first.settings.batch_size == 128
    assert first.texts_per_s == max(row["texts_per_s"] for row in first.table) > 0
    pinned = tuned_settings("sms_spam", "7", scorer, make_sample, "text", "cpu", Overrides(256, 1))
    assert pinned.settings == Settings(256, 1, None, "cpu") and pinned.how == "pinned" and calls == [1]
    small = tuned_settings("sms_spam", "8", scorer, lambda: None, "text", "cpu", Overrides())
    assert small.how == "defaults" and not list((tmp_path / "home" / "tuning" / "sms_spam").glob("v8-*"))
    cached = json.loads(next((tmp_path / "home" / "tuning" / "sms_spam").glob("v7-*.json")).read_text())
    assert cached["settings"] == first.settings.as_dict()


def test_cost_ledger_sums_partitions_from_their_footers(trained, tmp_path):
    _, scorer, d = trained
    _, source = _inputs(d, tmp_path, n=300)
    out = tmp_path / "predictions"
    for name, version in (("a.csv", "7"), ("b.csv", "8")):
        lineage = Lineage("m", version, "snorkel", "f", name, "r")
        score_file(scorer, source, out / f"{name}.parquet", lineage, Settings(batch_size=64),
                   footer={"fmops.fm_texts_per_s": "100.0"})
    (out / "notes.parquet").write_bytes(b"not ours")  # skipped, not fatal
    costs = task_costs(out)
    assert costs["partitions"] == 2 and costs["rows"] == 600 and costs["fm_calls_equivalent"] == 600
    assert costs["fm_seconds_equivalent"] == 6.0 and costs["rows_by_model_version"] == {"7": 300, "8": 300}
    assert costs["rows_per_s"] > 0
    assert task_costs(tmp_path / "nowhere")["partitions"] == 0
