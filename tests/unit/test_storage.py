import numpy as np
import pandas as pd
import pytest

from fmops_pipelines import storage
from fmops_pipelines.errors import DataError


@pytest.mark.parametrize("value", [pd.DataFrame({"a": [1, 2], "b": ["x", None]}), np.arange(6).reshape(2, 3),
                                   {"k": [1, 2]}, {1, 2}])
def test_round_trip(tmp_path, value):
    path = storage.write_value(tmp_path / "t" / "v", value)
    back = storage.read_value(tmp_path / "t" / "v")
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(back, value)
    elif isinstance(value, np.ndarray):
        assert path.suffix == ".npy" and (back == value).all()
    else:
        assert back == value
    assert not list(path.parent.glob(".*tmp*"))


def test_a_value_that_changes_type_leaves_no_stale_file(tmp_path):
    storage.write_value(tmp_path / "v", pd.DataFrame({"a": [1]}))
    storage.write_value(tmp_path / "v", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json"]


def test_write_table_formats(tmp_path):
    df = pd.DataFrame({"text": ["a"], "label": ["ham"]})
    for name in ("o.csv", "o.parquet", "o.jsonl"):
        storage.write_table(df, tmp_path / name)
    assert pd.read_csv(tmp_path / "o.csv").equals(df)
    with pytest.raises(DataError, match="o.xlsx: unsupported output format"):
        storage.write_table(df, tmp_path / "o.xlsx")


def test_predictions_never_clobber_input_columns():
    from fmops_pipelines.specialist.packaging import attach_predictions

    inputs = pd.DataFrame({"text": ["a", "b"], "label": ["gold1", "gold2"]}, index=[5, 9])
    out = attach_predictions(inputs, pd.DataFrame({"label": ["ham", "spam"], "p_ham": [0.9, 0.2]}))
    assert list(out.columns) == ["text", "label", "predicted_label", "p_ham"]
    assert out["label"].tolist() == ["gold1", "gold2"] and out["predicted_label"].tolist() == ["ham", "spam"]
