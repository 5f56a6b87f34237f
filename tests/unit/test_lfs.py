import pandas as pd
import pytest

from fmops_pipelines.errors import SpecError
from fmops_pipelines.spec import load_spec
from fmops_pipelines.supervision.analysis import coverage_accuracy_plot, labeler_summary
from fmops_pipelines.supervision.lfs import LabelingFunctionError, apply_lfs, keyword_lf, regex_lf, task_lfs
from tests.conftest import REPO, shipped_spec, write_task

ROWS = pd.DataFrame({"id": ["a", "b", "c", "d"],
                     "text": ["Check out my channel http://x.co", "love this song", "subscribe pls", "wow"]})
LABELS = ["ham", "spam"]


def test_keyword_and_regex_rules_vote_or_abstain():
    votes = apply_lfs([keyword_lf("my_channel", "spam", ["my channel"]), regex_lf("link", "spam", r"https?://"),
                       keyword_lf("song", "ham", ["song"])], ROWS, LABELS)
    assert votes.to_dict("list") == {"lf_my_channel": [1, -1, -1, -1], "lf_link": [1, -1, -1, -1],
                                     "lf_song": [-1, 0, -1, -1]}
    assert apply_lfs([keyword_lf("sub", "spam", ["sub"])], ROWS, LABELS)["lf_sub"].tolist() == [-1, -1, -1, -1]


def test_python_labeling_functions_from_the_task_folder(tmp_path):
    spec = shipped_spec("youtube_spam")
    path = write_task(tmp_path, "youtube_spam", spec)
    (path.parent / "rules.py").write_text(
        "from fmops_pipelines.supervision.lfs import labeling_function\n"
        "@labeling_function(label='ham')\ndef short(text): return len(text.split()) < 2\n"
        "@labeling_function()\ndef shouty(text): return 'spam' if text.isupper() else None\n"
        "def helper(text): return 'not a labeling function'\n")
    lfs = task_lfs(load_spec(path))
    assert [lf.name for lf in lfs][-2:] == ["short", "shouty"]
    assert len(lfs) == len(spec["labeling_functions"]) + 2
    votes = apply_lfs(lfs[-2:], pd.DataFrame({"id": ["x", "y"], "text": ["wow", "BUY NOW"]}), LABELS)
    assert votes.to_dict("list") == {"lf_short": [0, -1], "lf_shouty": [-1, 1]}


def test_shipped_youtube_rules_load():
    lfs = task_lfs(load_spec(REPO / "assets" / "youtube_spam" / "task.yaml"))
    assert {"link", "subscribe", "short_comment", "view_count_chatter"} <= {lf.name for lf in lfs}


def test_a_failing_labeling_function_names_itself_and_the_row(tmp_path):
    path = write_task(tmp_path, "youtube_spam", shipped_spec("youtube_spam"))
    (path.parent / "rules.py").write_text(
        "from fmops_pipelines.supervision.lfs import labeling_function\n"
        "@labeling_function(label='spam')\ndef fragile(text): return text.split()[3] == 'x'\n"
        "@labeling_function()\ndef wrong_label(text): return 'eggs'\n")
    fragile, wrong = task_lfs(load_spec(path))[-2:]
    with pytest.raises(LabelingFunctionError, match=r"labeling function 'fragile' \(.*rules.py\) failed on row "
                                                    r"id=b: IndexError: list index out of range"):
        apply_lfs([fragile], ROWS, LABELS)
    with pytest.raises(LabelingFunctionError, match=r"'wrong_label' .* row id=a: ValueError: returned 'eggs'"):
        apply_lfs([wrong], ROWS, LABELS)


def test_bad_rules_are_spec_errors(tmp_path):
    spec = shipped_spec("youtube_spam")
    spec["labeling_functions"].append({"name": "bad", "label": "spam", "regex": "(unclosed"})
    with pytest.raises(SpecError, match=r"labeling_functions.6: invalid regex"):
        load_spec(write_task(tmp_path, "youtube_spam", spec))
    spec["labeling_functions"][-1] = {"name": "bad", "label": "eggs", "keywords": ["x"]}
    with pytest.raises(SpecError, match=r"task.yaml: labeling_functions.6.label: 'eggs' is not one of"):
        load_spec(write_task(tmp_path, "youtube_spam", spec))
    path = write_task(tmp_path, "youtube_spam", shipped_spec("youtube_spam"))
    (path.parent / "broken.py").write_text("import not_a_module\n")
    with pytest.raises(SpecError, match=r"broken.py: cannot import labeling functions: ModuleNotFoundError"):
        task_lfs(load_spec(path))


def test_labeler_summary_and_plot():
    import numpy as np

    L_train = np.array([[1, -1, 0], [1, 1, -1], [-1, 0, 0], [1, 1, 1]])
    L_dev = np.array([[1, -1, 0], [0, 1, -1]])
    summary = labeler_summary(L_train, L_dev, np.array([1, 0]), ["p_a", "lf_b", "lf_c"], LABELS,
                              np.array([0.9, 0.5, 0.7]))
    assert summary["kind"].tolist() == ["prompt", "rule", "rule"]
    assert summary["coverage"].tolist() == [0.75, 0.75, 0.75]
    assert summary["dev_accuracy"].tolist() == [1.0, 0.0, 0.0]
    assert summary.loc[2, "polarity"] == "ham,spam"
    assert coverage_accuracy_plot(summary)[:4] == b"\x89PNG"
