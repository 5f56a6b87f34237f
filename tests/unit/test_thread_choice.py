"""Training steps on one thread or all: the choice changes a training's time, never its weights."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from fmops_pipelines.specialist import thread_choice
from fmops_pipelines.specialist.ngram import NgramConfig, train_ngram
from fmops_pipelines.specialist.thread_choice import ThreadChoice
from fmops_pipelines.specialist.training_loop import TrainConfig
from tests.conftest import sms_student_data


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _weights(model) -> list[np.ndarray]:
    return [v.detach().cpu().numpy().copy() for v in model.net.state_dict().values()]


def test_an_ngram_student_trains_to_the_same_bits_on_any_thread_count(two_threads, tmp_path, monkeypatch):
    """What lets thread_choice switch counts mid-training: on 1 thread, on 2, and switching between them every
    step or two, the word+char student (TF-IDF weights too) comes out with the same weights and probabilities."""
    monkeypatch.setenv("FMOPS_TRAINING_MEMO", "0")
    d = sms_student_data(tmp_path / "assets")
    texts, soft = d["texts"][:1500], d["soft"][:1500]
    cfg = NgramConfig(labels=d["labels"], architecture="ngram_char", char_ngrams=(2, 4))
    train_cfg = TrainConfig(epochs=3, patience=3, batch_size=32)

    def train(threads: int, choose: bool):
        torch.set_num_threads(threads)
        model, history = train_ngram(cfg, train_cfg, texts, soft, d["dev"], d["y_dev"], choose_threads=choose)
        return _weights(model), model.predict_proba(d["test"]), history

    one, one_probs, _ = train(1, False)
    two, two_probs, _ = train(2, False)
    monkeypatch.setattr(thread_choice, "PROBE", 1)  # a probe every third step: the count switches all the time
    monkeypatch.setattr(thread_choice, "EVERY", 3)
    switched, switched_probs, history = train(2, True)
    assert torch.get_num_threads() == 2  # given back
    for a, b, c in zip(one, two, switched):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert np.array_equal(one_probs, two_probs) and np.array_equal(one_probs, switched_probs)
    assert history.epochs  # it trained (no memo)


def test_the_faster_count_wins_and_a_slow_team_is_probed_less_often(two_threads):
    """Steps that are slower on all threads (as beside busy processes) run on one after the first probe, and
    probes back off while one keeps winning; steps faster on all threads run on all, probed every `every`."""

    def run(slow_on: int, steps: int) -> ThreadChoice:
        choice = ThreadChoice(probe=2, every=10)
        for _ in range(steps):
            choice.before_step()
            time.sleep(0.02 if torch.get_num_threads() == slow_on else 0.001)
            choice.after_step()
        choice.close()
        return choice

    busy = run(slow_on=2, steps=200)
    assert busy.choices == [1, 1, 1, 1]  # decided at steps 4, 28, 72, 156: 20, 40, 80 steps apart, not every 14
    idle = run(slow_on=1, steps=60)
    assert idle.choices == [2, 2, 2, 2]  # decided at steps 4, 18, 32, 46
    assert torch.get_num_threads() == 2


def test_one_thread_or_a_disabled_choice_changes_nothing(two_threads):
    disabled = ThreadChoice(enabled=False)
    torch.set_num_threads(1)
    single = ThreadChoice(probe=1, every=3)
    for choice in (disabled, single):
        for _ in range(10):
            choice.before_step()
            choice.after_step()
        choice.close()
        assert not choice.enabled and not choice.choices
    assert torch.get_num_threads() == 1
