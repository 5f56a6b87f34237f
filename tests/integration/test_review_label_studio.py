"""A review round through a real Label Studio (its own environment, started by deploy/local/label_studio.sh):
`fmops review` creates the project and pushes the queue of the session's small sms_spam run, a person's
annotations are submitted through Label Studio's API, the next `fmops review` imports them into the gold store,
and the next run's splits count them as gold. Bad answers, a wrong token and an unreachable server each stop with
one line and leave the store as it was. The browser test screenshots the project with its queued rows."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import requests

from fmops_pipelines.cli import main
from tests.conftest import REPO
from tests.processes import free_port

LS_VENV = Path(os.environ.get("FMOPS_LS_VENV", REPO / ".labelstudio-venv"))
CHROMIUM = os.environ.get("FMOPS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(os.environ.get("FMOPS_TEST_ARTIFACTS", REPO / "test-artifacts")) / "screenshots"
pytestmark = [pytest.mark.integration, pytest.mark.skipif(
    not (LS_VENV / "bin" / "label-studio").exists(),
    reason=f"no Label Studio environment at {LS_VENV} (bash scripts/bootstrap.sh --label-studio)")]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """A fresh Label Studio on a free port: (url, token, user, password)."""
    stack = tmp_path_factory.mktemp("stack")
    env = {**os.environ, "FMOPS_STACK_DIR": str(stack), "FMOPS_LS_PORT": str(free_port()),
           "FMOPS_BIN": str(Path(sys.executable).parent), "FMOPS_LS_VENV": str(LS_VENV)}
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        env.pop(name, None)
    script = REPO / "deploy" / "local" / "label_studio.sh"
    started = subprocess.run(["bash", str(script), "start"], env=env, capture_output=True, text=True, timeout=420,
                             check=False)
    try:
        assert started.returncode == 0, started.stderr + (stack / "logs" / "label_studio.log").read_text()[-3000:]
        token = (stack / "label-studio" / "token").read_text().strip()
        assert token not in started.stdout + started.stderr  # never printed
        yield (f"http://127.0.0.1:{env['FMOPS_LS_PORT']}", token, "admin@fmops.local",
               (stack / "label-studio" / "password").read_text().strip())
    finally:
        subprocess.run(["bash", str(script), "stop"], env=env, capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def home(finished_small_run, tmp_path_factory):
    """A copy of the finished small run's FMOPS_HOME (review writes its gold store there; the original stays
    untouched for the other tests) and its assets folder."""
    root, _ = finished_small_run
    copy = tmp_path_factory.mktemp("review_home")
    shutil.copytree(root / "home", copy / "home", ignore=shutil.ignore_patterns("run.lock"))
    return copy / "home", root / "assets"


def fmops(args: list[str], home: tuple, monkeypatch, url: str, token: str) -> tuple[int, str, str]:
    """`fmops ARGS` in-process against the copied home and this Label Studio: (exit code, stdout, stderr)."""
    monkeypatch.setenv("FMOPS_HOME", str(home[0]))
    monkeypatch.setenv("FMOPS_ASSETS_DIR", str(home[1]))
    monkeypatch.setenv("LABEL_STUDIO_URL", url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


class Person:
    """Someone annotating in Label Studio, through the API its web page calls."""

    def __init__(self, url: str, token: str):
        self.url, self.headers = url, {"Authorization": f"Token {token}"}

    def tasks(self, project: int) -> list[dict]:
        got = requests.get(f"{self.url}/api/tasks", params={"project": project, "page_size": 500, "fields": "all"},
                           headers=self.headers, timeout=30)
        got.raise_for_status()
        return got.json()["tasks"]

    def annotate(self, task_id: int, label: str) -> dict:
        done = requests.post(f"{self.url}/api/tasks/{task_id}/annotations", headers=self.headers, timeout=30, json={
            "result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]})
        done.raise_for_status()
        return done.json()

    def change(self, annotation_id: int, label: str) -> None:
        requests.patch(f"{self.url}/api/annotations/{annotation_id}", headers=self.headers, timeout=30, json={
            "result": [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]}
        ).raise_for_status()


def _truth(home) -> dict[str, str]:
    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.spec import load_spec

    data = load_dataset(load_spec(home[1] / "sms_spam" / "task.yaml"))
    return dict(zip(data["id"].astype(str), data["label"]))


def test_a_round_goes_to_label_studio_and_comes_back_as_gold(label_studio, home, monkeypatch):
    from fmops_pipelines.launcher import stored
    from fmops_pipelines.review.store import GoldStore

    url, token, user, _ = label_studio
    code, out, err = fmops(["review", "sms_spam"], home, monkeypatch, url, token)
    assert code == 0, err
    queue = stored("sms_spam", "review_queue")
    labels, rechecks = int((queue["kind"] == "label").sum()), int((queue["kind"] == "recheck").sum())
    assert f"round 1: {labels} row(s) to label and {rechecks} gold label(s) to re-check -> {url}/projects/" in out
    assert token not in out + err
    project = int(out.split("/projects/")[1].split()[0])
    person = Person(url, token)
    tasks = person.tasks(project)
    assert len(tasks) == len(queue) and {t["data"]["fmops_id"] for t in tasks} == set(queue["id"])
    for t in tasks:  # each row shows why it was asked and comes with the specialist's pre-annotation
        assert t["data"]["reason"] and t["predictions"][0]["result"][0]["value"]["choices"][0] in ("ham", "spam")
    truth = _truth(home)
    pool_tasks = [t for t in tasks if t["data"]["kind"] == "label"][:12]
    for t in pool_tasks:
        person.annotate(t["id"], truth[t["data"]["fmops_id"]])

    code, out, err = fmops(["review", "sms_spam"], home, monkeypatch, url, token)
    assert code == 0, err
    assert "12 new label(s) from Label Studio into the gold store" in out and "nothing new to ask" in out
    reviewed = GoldStore().reviewed("sms_spam")
    assert set(reviewed["row_id"]) == {t["data"]["fmops_id"] for t in pool_tasks}
    assert set(reviewed["annotator"]) == {user} and set(reviewed["round"]) == {1}
    assert reviewed["previous_label"].isna().all()  # pool rows: no label before the person's
    code, out, _ = fmops(["review", "sms_spam"], home, monkeypatch, url, token)  # the same annotations again
    assert code == 0 and "0 new label(s)" in out and len(GoldStore().entries("sms_spam")) == 12

    # the next run's splits: the twelve are gold on top of the spec's cap
    before = stored("sms_spam", "splits")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{home[0].parent / 'side_mlflow.db'}"}
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "fmops_pipelines.definitions",
                           "--select", "sms_spam/splits"], cwd=home[0].parent, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    after = stored("sms_spam", "splits")
    gold_after = set(after.loc[after["split"] == "dev", "id"])
    assert {t["data"]["fmops_id"] for t in pool_tasks} <= gold_after
    assert len(gold_after) >= (before["split"] == "dev").sum() + 12
    assert set(after.loc[after["split"] == "test", "id"]) == set(before.loc[before["split"] == "test", "id"])


def test_bad_answers_a_wrong_token_and_an_unreachable_server_each_stop_with_one_line(label_studio, home, monkeypatch):
    from fmops_pipelines.review.store import GoldStore

    url, token, _, _ = label_studio
    code, _, err = fmops(["review", "sms_spam"], home, monkeypatch, url, "not-the-token")
    assert code == 2 and err.strip().count("\n") == 0 and "refused the API token" in err and "not-the-token" not in err
    code, _, err = fmops(["review", "sms_spam"], home, monkeypatch, f"http://127.0.0.1:{free_port()}", token)
    assert code == 2 and "is unreachable" in err and err.strip().count("\n") == 0

    code, _, err = fmops(["review", "sms_spam"], home, monkeypatch, url, token)
    assert code == 0, err
    store, person = GoldStore(), Person(url, token)
    stored_before = len(store.entries("sms_spam"))
    project = store.project("sms_spam", url)
    open_tasks = [t for t in person.tasks(project) if not t["annotations"]]
    good = person.annotate(open_tasks[0]["id"], "ham")
    bad = person.annotate(open_tasks[1]["id"], "eggs")
    code, _, err = fmops(["review", "sms_spam"], home, monkeypatch, url, token)
    assert code == 2 and f"Label Studio task {open_tasks[1]['id']}" in err and "label 'eggs' is not one of ham, spam" in err
    assert "nothing was imported" in err and len(store.entries("sms_spam")) == stored_before
    person.change(bad["id"], "spam")  # the person fixes it in Label Studio: the next import takes both
    code, _, err = fmops(["review", "sms_spam"], home, monkeypatch, url, token)
    assert code == 0, err
    assert len(store.entries("sms_spam")) == stored_before + 2 and good["id"]


def test_the_review_sensor_imports_and_launches_the_lifecycle_past_its_threshold(label_studio, home, monkeypatch):
    import dagster as dg

    from fmops_pipelines.review.label_studio import LabelStudio
    from fmops_pipelines.review.store import GoldStore
    from fmops_pipelines.spec import ReviewSpec, load_spec
    from fmops_pipelines.stages.automation import review_requests

    url, token, _, _ = label_studio
    monkeypatch.setenv("FMOPS_HOME", str(home[0]))
    spec = load_spec(home[1] / "sms_spam" / "task.yaml")
    instance = dg.DagsterInstance.ephemeral()
    assert "LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY not set" in review_requests(spec, None, instance, None).skip_reason.skip_message
    total = GoldStore().count("sms_spam")
    few = spec.model_copy(update={"review": ReviewSpec(retrain_after=total + 1)})
    waiting = review_requests(few, LabelStudio(url, token), instance, None)
    assert not waiting.run_requests and f"{total} since the last launch" in waiting.skip_reason.skip_message
    enough = spec.model_copy(update={"review": ReviewSpec(retrain_after=total)})
    launched = review_requests(enough, LabelStudio(url, token), instance, None)
    assert [r.tags["fmops/trigger"] for r in launched.run_requests] == ["review"]
    again = review_requests(enough, LabelStudio(url, token), instance, launched.cursor)
    assert not again.run_requests  # nothing new since that launch


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")
def test_the_project_shows_the_queued_rows_with_their_pre_annotations_in_a_browser(label_studio, home, monkeypatch):
    from playwright.sync_api import sync_playwright

    from fmops_pipelines.review.store import GoldStore

    url, token, user, password = label_studio
    code, _, err = fmops(["review", "sms_spam"], home, monkeypatch, url, token)
    assert code == 0, err
    project = GoldStore().project("sms_spam", url)
    first = Person(url, token).tasks(project)[0]
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{url}/user/login")
        page.fill("input[name=email]", user)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(lambda u: "/user/login" not in u)  # logged in
        page.goto(f"{url}/projects/{project}/data")
        page.get_by_text(first["data"]["text"][:30]).first.wait_for()  # the queued rows, each with its reason
        assert page.get_by_text(first["data"]["reason"][:30]).first.is_visible()
        page.screenshot(path=str(SHOTS / "label_studio_queue.png"))
        page.goto(f"{url}/projects/{project}/data?task={first['id']}")
        page.get_by_text("Why fmops asks").first.wait_for()
        page.get_by_text("specialist v").first.wait_for()  # the pre-annotation's source
        page.wait_for_timeout(1500)
        page.screenshot(path=str(SHOTS / "label_studio_task.png"))
        browser.close()
