"""FM faults against a real local endpoint: 5xx, timeouts, dropped connections, malformed JSON and answers
outside the label set are retried with backoff, then the row abstains and is counted by reason; what was
answered is cached and a failed row is asked again next time; an endpoint that goes down stops the step
with one line, keeping what it answered before."""

import sqlite3

import numpy as np
import pytest

from fmops_pipelines.fm.base import Prompt
from fmops_pipelines.fm.cache import FMCache
from fmops_pipelines.fm.openai_compat import EndpointError, OpenAICompatibleFM
from tests import fake_openai

PROMPT = Prompt("Message: {text}", ("ham", "spam"))
GOOD = ["win a free prize now", "see you at dinner", "free entry to win", "ok lol", "FLAKY claim your prize"]
FAULTS = {"FAULT-503 a": "http_503", "FAULT-SLOW b": "timeout", "FAULT-CLOSE c": "connection",
          "FAULT-JSON d": "malformed_reply", "FAULT-MAYBE e": "off_label"}


@pytest.fixture()
def endpoint():
    httpd, url = fake_openai.serve()
    yield url
    httpd.shutdown()


def cached_rows(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM responses").fetchone()[0]


def test_each_fault_is_retried_then_the_row_abstains_for_its_reason(endpoint, tmp_path):
    cache = tmp_path / "fm.sqlite"
    fm = OpenAICompatibleFM("tiny", endpoint, cache=FMCache(cache), max_concurrency=4, timeout_s=0.3, max_retries=2,
                            backoff_s=0.01)
    texts = GOOD + list(FAULTS)
    scores = fm.score(texts, PROMPT)

    assert scores[: len(GOOD)].argmax(axis=1).tolist() == [1, 0, 1, 0, 1]  # FLAKY answered on its third try
    assert np.isnan(scores[len(GOOD):]).all()
    assert dict(fm.stats.abstains) == {"http_503": 1, "timeout": 1, "connection": 1, "malformed_reply": 1,
                                       "off_label": 1}
    tries = fake_openai.FaultyEndpoint.tries
    assert tries["Message: FAULT-503 a"] == tries["Message: FAULT-JSON d"] == 3  # 1 + max_retries
    assert tries["Message: FLAKY claim your prize"] == 3 and tries["Message: ok lol"] == 1
    assert fm.stats.calls == 6 and cached_rows(cache) == 6  # answers (the off-label one too), never a fault

    again = OpenAICompatibleFM("tiny", endpoint, cache=FMCache(cache), timeout_s=0.3, max_retries=0)
    np.testing.assert_array_equal(again.score(texts, PROMPT), scores)
    assert again.stats.cache_hits == 6 and sum(again.stats.abstains.values()) == 4  # the faulted rows asked again
    assert fake_openai.FaultyEndpoint.tries["Message: FAULT-503 a"] == 4


def test_an_endpoint_that_goes_down_stops_with_one_line_and_keeps_what_it_answered(endpoint, tmp_path):
    fake_openai.FaultyEndpoint.down_after = 7
    fm = OpenAICompatibleFM("tiny", endpoint, cache=FMCache(tmp_path / "fm.sqlite"), max_concurrency=1,
                            max_retries=1, backoff_s=0.01, max_consecutive_failures=5)
    with pytest.raises(EndpointError) as err:
        fm.score([f"message number {i}" for i in range(40)], PROMPT)
    assert str(err.value) == (f"{endpoint}/chat/completions: gave up after 5 rows in a row failed 2 tries each "
                              "(last: HTTP 503 Service Unavailable); the rows answered before are cached")
    assert cached_rows(tmp_path / "fm.sqlite") == 7
    assert sum(fake_openai.FaultyEndpoint.tries.values()) == 7 + 5 * 2  # nothing asked after it gave up


def test_a_rejected_key_or_url_is_not_retried(endpoint, tmp_path):
    fm = OpenAICompatibleFM("tiny", endpoint.replace("/v1", "/nowhere"), max_retries=3, backoff_s=0.01)
    with pytest.raises(EndpointError, match=r"nowhere/chat/completions: HTTP 404 Not Found"):
        fm.score(["hello"], PROMPT)
    assert sum(fake_openai.FaultyEndpoint.tries.values()) == 0


def test_a_run_on_a_flaky_endpoint_labels_and_reports_its_abstains_by_reason(endpoint, tmp_path):
    """Exploration and the label matrix through the Dagster assets, on an endpoint where 5% of the messages
    always get a 503: the run succeeds, those rows abstain, and both assets report how many and why."""
    import dagster as dg

    from fmops_pipelines.defs.resources import resources
    from fmops_pipelines.fm.base import fm_usage
    from fmops_pipelines.launcher import stored
    from fmops_pipelines.spec import load_spec
    from fmops_pipelines.stages import task_definitions
    from tests.conftest import small_sms_spec, write_task

    fake_openai.FaultyEndpoint.fault_share = 0.05
    spec = small_sms_spec(fm={"backend": "openai", "model": "tiny", "base_url": endpoint, "timeout_s": 2,
                              "max_retries": 1},
                          prompts={"templates": ["Message: {text}"], "max_labelers": 2},
                          labels=[{"name": "ham", "verbalizers": ["ham"]}, {"name": "spam", "verbalizers": ["spam"]}])
    spec["splits"].update(max_rows=240, dev_size=40)
    task = load_spec(write_task(tmp_path / "assets", "sms_flaky", spec))
    keys = [dg.AssetKey(["sms_flaky", name]) for name in ("dataset", "splits", "gold_teacher", "prompt_scores",
                                                           "weak_label_matrix")]
    result = dg.materialize(task_definitions(task).assets, selection=keys, resources=resources().resources)
    assert result.success

    for name in ("prompt_scores", "weak_label_matrix"):
        meta = result.asset_materializations_for_node(f"sms_flaky__{name}")[0].metadata
        abstains = meta["fm_abstains"].value
        assert set(abstains) == {"http_503"} and meta["fm_abstained_rows"].value == abstains["http_503"] > 0
    usage = fm_usage(stored("sms_flaky", "prompt_scores"), stored("sms_flaky", "weak_label_matrix"))
    failed = {m: n for m, n in fake_openai.FaultyEndpoint.tries.items() if n > 1}
    assert all(n % 2 == 0 for n in failed.values())  # each asking: 1 + max_retries tries (a failed row is not
    assert usage["fm_abstains"]["http_503"] == sum(failed.values()) // 2 > 0  # cached, so the matrix asks again)
