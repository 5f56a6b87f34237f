"""The one-standard-error rule on paired bootstrap differences, on dev-sized samples."""

import numpy as np

from fmops_pipelines.noisy_choice import simplest_within_noise


def _flip(y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = y.copy()
    out[rows] = 1 - out[rows]
    return out


def test_a_simpler_candidate_a_few_rows_behind_is_kept():
    """They disagree on 30 rows, the fancier one right on 16 of them: a 2-row edge that a resample of dev
    rows undoes as often as not."""
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.3).astype(int)
    wrong = rng.permutation(200)
    simple = _flip(y, wrong[:16])  # wrong where the fancier one is right
    fancy = _flip(y, wrong[16:30])  # and the other way round
    chosen, scored = simplest_within_noise(y, {"stacked": fancy, "majority_vote": simple}, ["majority_vote", "stacked"], 2)
    assert scored["stacked"].score > scored["majority_vote"].score
    assert chosen == "majority_vote" and scored["majority_vote"].within_noise
    assert scored["majority_vote"].low < scored["majority_vote"].score < scored["majority_vote"].high
    assert scored["stacked"].shortfall == 0 and set(scored["stacked"].row()) >= {"dev", "interval_90"}


def test_a_clearly_better_candidate_wins_over_the_simpler_one():
    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.3).astype(int)
    wrong = rng.permutation(200)
    chosen, scored = simplest_within_noise(y, {"majority_vote": _flip(y, wrong[:50]), "stacked": _flip(y, wrong[:10])},
                                           ["majority_vote", "stacked"], 2)
    assert chosen == "stacked" and not scored["majority_vote"].within_noise
    assert scored["majority_vote"].shortfall > scored["majority_vote"].shortfall_se > 0


def test_a_wider_tolerance_keeps_the_simpler_candidate_one_to_two_standard_errors_behind():
    """Where the first candidate is known to win more often than dev can show (the gold teacher's joined kind), a
    shortfall between one and two standard errors keeps it at tolerance 2 and drops it at the rule's 1."""
    rng = np.random.default_rng(3)
    y = (rng.random(120) < 0.15).astype(int)  # ~100 gold rows, few positives: sms_spam at 100
    wrong = rng.permutation(120)
    for extra in range(1, 30):  # the first gap in (1.2, 1.8) standard errors
        predictions = {"joined": _flip(y, wrong[: 4 + extra]), "embeddings": _flip(y, wrong[:4])}
        _, scored = simplest_within_noise(y, predictions, ["joined", "embeddings"], 2)
        if 1.2 < scored["joined"].shortfall / scored["joined"].shortfall_se < 1.8:
            break
    else:
        raise AssertionError("no gap between 1.2 and 1.8 standard errors")
    assert simplest_within_noise(y, predictions, ["joined", "embeddings"], 2)[0] == "embeddings"
    chosen, scored = simplest_within_noise(y, predictions, ["joined", "embeddings"], 2, tolerance=2.0)
    assert chosen == "joined" and scored["joined"].within_noise and scored["joined"].row()["within_noise_of_best"]


def test_the_fast_macro_f1_is_scikit_learns():
    from sklearn.metrics import f1_score

    from fmops_pipelines.noisy_choice import _score

    rng = np.random.default_rng(2)
    for k in (2, 4):
        for _ in range(100):
            n = int(rng.integers(3, 60))
            y, pred = rng.integers(0, k, n), rng.integers(0, k, n)
            expected = f1_score(y, pred, average="macro", labels=range(k), zero_division=0)
            assert abs(_score(y, pred, k, "macro_f1") - expected) < 1e-12
