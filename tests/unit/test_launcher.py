"""How `fmops run` executes a job in its own process: a step's output is not kept alive for the rest of the run."""

import gc
import uuid
import weakref

import dagster as dg


class Output:
    """A step's value (at module level so the IO manager can pickle it)."""


SEEN: dict = {}


@dg.asset
def first() -> Output:
    value = Output()
    SEEN["first"] = weakref.ref(value)
    return value


@dg.asset
def second(first: Output) -> None:
    del first  # the copy loaded from storage
    gc.collect()
    SEEN["first_freed"] = SEEN["first"]() is None


def test_a_steps_output_is_freed_once_stored_not_held_until_the_run_ends(tmp_path):
    """execute_in_process keeps every output for its result object (output capture): at a 67k-row pool, hundreds of
    MB held through every later step. The local path stores it and lets it go."""
    from fmops_pipelines.launcher import _execute_here

    job = dg.Definitions(assets=[first, second], jobs=[dg.define_asset_job("both")]).resolve_job_def("both")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = _execute_here(job, instance, str(uuid.uuid4()), {}, {}, None)
    assert result.success
    assert SEEN["first_freed"]

    SEEN.clear()  # the same job through execute_in_process: the first output is still alive in the second step
    (tmp_path / "b").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "b")) as instance:
        assert job.execute_in_process(instance=instance).success
    assert SEEN["first_freed"] is False
