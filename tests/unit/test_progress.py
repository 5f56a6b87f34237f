"""Progress inside long steps: lines every few seconds with rate and ETA, none on a fast step, through Dagster's
run log to the UI and to `fmops run`'s console."""

import io

import dagster as dg

from fmops_pipelines import progress
from fmops_pipelines.launcher import _Progress
from fmops_pipelines.stages.conventions import with_progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_long_step_reports_done_rate_and_eta_and_a_fast_one_says_nothing():
    lines, clock = [], Clock()
    with progress.reporting(lines.append):
        fast = progress.Tracker("FM answers", 1000, "texts", clock=clock)
        clock.now = 4.0
        fast.advance(1000)
        fast.finish()
        assert lines == []  # done within the interval: nothing extra
        slow = progress.Tracker("FM answers", 1000, "texts", clock=clock)
        clock.now += 5.0
        slow.advance(250)
        clock.now += 2.0
        slow.advance(250)  # within 5 s of the last line: not shown
        clock.now += 3.0
        slow.advance(500)
        slow.finish()
    assert lines == ["progress: FM answers: 250/1,000 texts (25%), 50.0 texts/s, ETA 15s",
                     "progress: FM answers: 1,000/1,000 texts (100%), 100.0 texts/s, ETA 0s",
                     "progress: FM answers: 1,000/1,000 texts (100%), 100.0 texts/s in 10s"]
    unheard = progress.Tracker("x", None, "rows", every_s=0)  # no listener: counts, says nothing
    unheard.advance(5)
    assert unheard.done == 5 and unheard.emit is None


def test_progress_goes_to_the_run_log_and_the_console_prints_it(tmp_path):
    @dg.asset
    @with_progress
    def slow_asset(context: dg.AssetExecutionContext) -> int:
        tracker = progress.track("scoring", 3, "rows", every_s=0)
        for _ in range(3):
            tracker.advance(1)
        tracker.finish()
        return 3

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([slow_asset], instance=instance)
        logs = [e.user_message for e in instance.all_logs(result.run_id) if e.dagster_event is None]
        shown = [m for m in logs if m.startswith(progress.PREFIX)]
        assert [m.split(",")[0].removeprefix("progress: scoring: ") for m in shown] == [
            "1/3 rows (33%)", "2/3 rows (67%)", "3/3 rows (100%)", "3/3 rows (100%)"]
        assert "ETA" in shown[0] and " in " in shown[-1]  # the last line says how long it took
        console = io.StringIO()
        printer = _Progress(console, set(), {})
        for entry in instance.all_logs(result.run_id):
            printer.handle(entry)
    assert [line for line in console.getvalue().splitlines() if line.startswith("progress:")] == shown


def test_what_a_step_warns_of_follows_its_line_in_the_console_and_its_info_does_not():
    @dg.asset
    def partial_asset(context: dg.AssetExecutionContext) -> int:
        context.log.info("fitted 3 models")
        context.log.warning("demo: no gold teacher: some label has under 2 gold rows to cross-fit on")
        return 3

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([partial_asset], instance=instance)
        console = io.StringIO()
        printer = _Progress(console, set(), {})
        for entry in instance.all_logs(result.run_id):
            printer.handle(entry)
    lines = console.getvalue().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  [ok ] partial_asset"))
    assert lines[at + 1:] == ["         warning: demo: no gold teacher: some label has under 2 gold rows to cross-fit on"]
    assert not any("fitted 3 models" in line for line in lines)
