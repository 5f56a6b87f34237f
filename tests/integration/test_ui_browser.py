"""The Dagster UI checked in a real browser (Playwright driving Debian's Chromium): a small task is run with
`fmops run`, `fmops ui` is started on its FMOPS_HOME, and the pages a user looks at are checked: the task's
lineage, the evaluation's blocking checks, the plots inline, the report one click away, the automations.
Screenshots land in test-artifacts/screenshots/ (CI keeps that folder)."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fmops_pipelines.stages.conventions import TASK_ASSETS
from tests.conftest import REPO, SMALL_RUN_GATES, shipped_spec, write_task
from tests.processes import free_port, wait_for_ui

CHROMIUM = os.environ.get("FMOPS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")]
SHOTS = Path(os.environ.get("FMOPS_TEST_ARTIFACTS", REPO / "test-artifacts")) / "screenshots"
LOCATION = "fmops_pipelines.definitions"


@pytest.fixture(scope="module")
def ui(finished_small_run, tmp_path_factory):
    """`fmops ui` on the FMOPS_HOME of the session's finished small sms_spam run, with a second task defined
    but never run: (base URL, reports URL)."""
    root, env = finished_small_run
    assets = tmp_path_factory.mktemp("ui_assets")
    shutil.copytree(root / "assets" / "sms_spam", assets / "sms_spam")
    write_task(assets, "youtube_spam", shipped_spec("youtube_spam"))  # defined, never run: a second group
    reports_url, port = env["FMOPS_REPORTS_URL"], free_port()  # the address the run linked its plots at
    env = {**env, "FMOPS_ASSETS_DIR": str(assets)}
    proc = subprocess.Popen([sys.executable, "-m", "fmops_pipelines.cli", "ui", "--port", str(port)], cwd=assets,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_ui(port, proc)
        yield f"http://127.0.0.1:{port}", reports_url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, ui):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(60_000)
    skip = page.get_by_role("button", name="Skip")  # Dagster's community dialog, whenever it opens
    page.add_locator_handler(skip, lambda: skip.click())
    yield page
    page.close()


def visit(page, url: str, ready_text: str) -> None:
    """Open a UI page and wait for `ready_text`."""
    page.goto(url)
    page.get_by_text(ready_text, exact=True).filter(visible=True).first.wait_for()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_the_task_is_its_own_group_and_its_lineage_renders(page, ui):
    base, _ = ui
    visit(page, f"{base}/asset-groups", "sms_spam")
    assert page.get_by_text("youtube_spam", exact=True).filter(visible=True).count()
    page.get_by_text("fetching statuses").first.wait_for(state="hidden")
    shot(page, "1-global-lineage-one-group-per-task")
    visit(page, f"{base}/locations/{LOCATION}/asset-groups/sms_spam", "evaluation")
    for name in TASK_ASSETS:
        assert page.get_by_text(name, exact=True).filter(visible=True).count(), name
    shot(page, "2-sms_spam-lineage")


def test_the_evaluation_shows_its_blocking_checks_passing(page, ui):
    base, _ = ui
    visit(page, f"{base}/assets/sms_spam/evaluation?view=checks", "test_macro_f1")
    for gate in ("test_macro_f1", "speedup_over_fm", "label_coverage"):
        page.get_by_text(gate, exact=True).first.click()
        page.get_by_text("This is a blocking asset check.").wait_for()
        assert page.get_by_text("Passed", exact=True).first.is_visible()
    assert page.get_by_text("Succeeded").count() == len(SMALL_RUN_GATES)
    shot(page, "3-evaluation-blocking-checks")


def test_plots_render_inline_and_the_report_opens_from_the_ui(page, ui):
    base, reports_url = ui
    visit(page, f"{base}/assets/sms_spam/evaluation", "confusion_matrix")
    for alt in ("confusion matrix", "reliability diagram"):
        image = page.get_by_alt_text(alt)
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=image.element_handle())
        assert image.is_visible()
        shot(page, f"4-evaluation-{alt.replace(' ', '-')}-inline")
    link = page.locator(f'a[href^="{reports_url}/sms_spam/evaluation-v"][href$=".html"]').first
    with page.context.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_load_state()
    assert report.title().startswith("fmops evaluation: sms_spam v")
    assert report.get_by_text("all gates passed").is_visible()
    shot(report, "5-report-opened-from-the-ui")
    report.close()

    visit(page, f"{base}/assets/sms_spam/label_model", "coverage_vs_accuracy")
    image = page.get_by_alt_text("labelers: dev accuracy vs train coverage")
    image.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=image.element_handle())
    shot(page, "6-label-model-plot-inline")


def test_the_automation_page_lists_the_tasks_sensors_and_schedule(page, ui):
    base, _ = ui
    visit(page, f"{base}/automation", "sms_spam_inbox_sensor")
    for name in ("sms_spam_nightly_batch_inference", "youtube_spam_inbox_sensor"):
        assert page.get_by_text(name, exact=True).is_visible()
    shot(page, "7-automation")
