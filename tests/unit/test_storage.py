import numpy as np
import pandas as pd
import pytest

from fmops_pipelines import storage


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


