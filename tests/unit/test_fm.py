import numpy as np
import pytest

from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.data.splits import label_indices, make_splits, part
from fmops_pipelines.errors import SpecError
from fmops_pipelines.fm.base import Prompt
from fmops_pipelines.fm.embedding import build_fm
from fmops_pipelines.fm.exploration import (
    ABSTAIN,
    CalibratedPrompt,
    calibrated_prompts,
    candidate_prompts,
    explore_prompts,
)
from fmops_pipelines.spec import load_spec
from tests.conftest import small_sms_spec, write_task


@pytest.fixture(scope="module")
def sms_slice(tmp_path_factory):
    spec = load_spec(write_task(tmp_path_factory.mktemp("assets"), "sms_spam", small_sms_spec()))
    return spec, make_splits(load_dataset(spec), spec.splits)


def test_prompt_identity_is_its_content():
    a = Prompt("This SMS is {label}.", ("ham", "spam"))
    assert a.id == Prompt("This SMS is {label}.", ("ham", "spam")).id
    assert a.id != Prompt("This SMS is {label}!", ("ham", "spam")).id
    assert a.label_texts() == ["This SMS is ham.", "This SMS is spam."]


def test_candidates_are_templates_times_verbalizer_sets():
    prompts = candidate_prompts(["{label}", "It is {label}"], [["a", "b", "c"], ["x"]])
    assert len(prompts) == 6
    assert prompts[1].verbalizers == ("b", "x")


def test_embedding_scores_and_cache(minilm):
    texts = ["WINNER!! Claim your free prize, call 09061701461 now", "are we still on for dinner tonight?"]
    prompt = Prompt("{label}", ("a casual personal message between friends", "an advertisement offering a free prize"))
    before = minilm.stats.calls
    scores = minilm.score(texts, prompt)
    assert scores.shape == (2, 2)
    assert scores[0, 1] > scores[0, 0] and scores[1, 0] > scores[1, 1]
    assert minilm.stats.calls - before == 4  # two texts + two label prompts
    hits = minilm.stats.cache_hits
    assert np.allclose(minilm.score(texts, prompt), scores, atol=1e-6)
    assert minilm.stats.calls - before == 4 and minilm.stats.cache_hits == hits + 4


def test_unknown_backend_and_model_are_spec_errors(minilm):
    with pytest.raises(SpecError, match="fm.backend: unknown backend 'gpt'"):
        build_fm("gpt", "x", None)
    with pytest.raises(SpecError, match="fm.model: '/no/such/model' is neither"):
        build_fm("embedding", "/no/such/model", None)


def test_exploration_scores_calibrates_and_selects(minilm, sms_slice):
    spec, splits = sms_slice
    dev, train = part(splits, "dev"), part(splits, "train")
    y_dev = label_indices(dev["label"], spec.label_names)
    candidates = candidate_prompts(spec.prompts.templates, [label.verbalizers for label in spec.labels])
    table = explore_prompts(minilm, candidates, train["text"].tolist()[:300], dev["text"].tolist(), y_dev,
                            spec.label_names, max_labelers=4, min_coverage=0.3)
    assert len(table) == len(candidates) and table["dev_macro_f1"].is_monotonic_decreasing
    assert 1 <= table["selected"].sum() <= 4
    assert (table["coverage"] >= 0.3 - 1e-9).all()
    assert table["dev_accuracy"].iloc[0] > 0.6  # the packaged MiniLM does better than chance on real SMS
    cal = calibrated_prompts(table)[0]
    assert CalibratedPrompt.from_record(cal.to_record()) == cal
    votes = cal.votes(minilm.score(dev["text"].tolist(), cal.prompt))
    assert set(np.unique(votes)) <= {ABSTAIN, 0, 1}
