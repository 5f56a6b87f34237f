"""What every task asset shares: key prefix, group (the task), stage tag, kinds, owners, code_version, and
name-based wiring.

`task_asset` is `@dg.asset` with the task's conventions. A parameter named after a task asset (`splits`,
`label_model`, ...) is that asset of the same task: Dagster's own rule that an argument named like an
asset is that asset, scoped to the task's key prefix so no key resolves across tasks.
"""

from __future__ import annotations

import functools
import inspect
import math
import time

import dagster as dg
import pandas as pd

from fmops_pipelines import progress
from fmops_pipelines.memory import FULL_COLLECTION_AFTER_S, give_back_freed_memory
from fmops_pipelines.spec import TaskSpec

# Bump when asset logic changes, so Dagster marks materializations from older code as stale.
CODE_VERSION = "13"  # 13: the evaluation's label-model "teacher" row only where its labels taught the
# specialist; a declared split column's validation / valid / val read as dev;
# 12: fm.budget counts gold and test inside it (the pool's sample gets the rest), the
# queue's text features project only the n-grams its candidates use, the embedding FM encodes 16 texts a pass on CPU;
# 11: an n-gram student's sparse gradient is summed in its lookups' order (sparse_state.coalesced),
# the specialist's resumed_after_epoch counts every training of the step;
# 10: a candidate just short of min_throughput is timed again, the teaching finding says
# "within 0.01 of its teacher" where it is below it, the review queue embeds no row outside fm.budget's sample;
# 9: the gold teacher's richest kind kept within two standard errors; 8: a sampled refit keeps the sample's
# self-training verdict; 7: the convex student's gold weight chosen out of fold; 6: the gold teacher's kind is the
# richest within noise; 5: the TF-IDF convex student, the label model's recipes cross-fitted per gold fold; 4: every
# gold row teaches (gold_teacher, gold rows in the student); 3: streamed batch lineage

# Every asset of a task, in lifecycle order, with its stage (the asset's `stage` tag). The asset group is the
# task: in the UI's lineage each group is one task's whole path, so tasks are told apart at a glance, and
# `tag:stage=labeling` selects one stage across tasks.
TASK_ASSETS = {"dataset": "data", "splits": "data", "prompt_scores": "exploration", "weak_label_matrix": "labeling",
               "label_model": "labeling", "gold_teacher": "labeling", "training_labels": "labeling", "specialist": "training",
               "evaluation": "evaluation", "review_queue": "review", "champion": "deployment",
               "batch_predictions": "batch_inference"}


def key(spec: TaskSpec, name: str) -> dg.AssetKey:
    return dg.AssetKey([spec.name, name])


# Dagster concurrency pools: steps that call the FM, and steps that train, across all runs of an instance.
# Limits live in the instance (deploy/local/start.sh sets them on the Postgres one); unset means no limit.
FM_POOL, TRAINING_POOL = "fmops_fm", "fmops_training"
POOLS = {"prompt_scores": FM_POOL, "weak_label_matrix": FM_POOL, "gold_teacher": FM_POOL, "label_model": TRAINING_POOL,
         "specialist": TRAINING_POOL}


def task_asset(spec: TaskSpec, kinds: set[str], description: str, **kwargs):
    """`@dg.asset` for one task: named by the function, grouped by its task, tagged with its stage, inputs wired
    by parameter name, in its concurrency pool if it calls the FM or trains."""

    def decorate(fn):
        name = fn.__name__
        params = inspect.signature(fn).parameters
        ins = {p: dg.AssetIn(key=key(spec, p)) for p in params if p in TASK_ASSETS}
        return dg.asset(name=name, key_prefix=[spec.name], ins=ins, group_name=spec.name,
                        tags={"stage": TASK_ASSETS[name]}, kinds=kinds,
                        owners=spec.owners, code_version=f"{CODE_VERSION}-{spec.fingerprint()}",
                        description=description, pool=POOLS.get(name), **kwargs)(with_progress(fn))

    return decorate


def with_progress(fn):
    """The asset body with the progress lines of the core code it calls sent to the run's log: the UI shows them
    among the step's events, and `fmops run` prints them as they arrive (fmops_pipelines.progress). After it, the
    memory it freed goes back to the OS: the next step of an in-process run starts from what is still held."""

    @functools.wraps(fn)
    def body(*args, **kwargs):
        context = kwargs.get("context", args[0] if args else None)
        log = getattr(getattr(context, "log", None), "info", None)
        began = time.perf_counter()
        try:
            if log is None:
                return fn(*args, **kwargs)
            with progress.reporting(log):
                return fn(*args, **kwargs)
        finally:
            give_back_freed_memory(full=time.perf_counter() - began >= FULL_COLLECTION_AFTER_S)

    return body


def table_md(df: pd.DataFrame, max_rows: int = 20) -> dg.MetadataValue:
    """A small DataFrame as Markdown for the asset page."""
    return dg.MetadataValue.md(df.head(max_rows).to_markdown(index=False, floatfmt=".3f"))


def table_value(df: pd.DataFrame) -> dg.MetadataValue:
    """A DataFrame as a typed Dagster table (sortable in the UI); NaN becomes empty."""
    kinds = {"i": "int", "u": "int", "f": "float", "b": "bool"}
    schema = dg.TableSchema(columns=[dg.TableColumn(str(c), kinds.get(df[c].dtype.kind, "string")) for c in df.columns])
    records = [dg.TableRecord({str(k): (None if isinstance(v, float) and math.isnan(v) else
                                        v.item() if hasattr(v, "item") else v if isinstance(v, (int, float, bool))
                                        else str(v)) for k, v in row.items()})
               for row in df.to_dict("records")]
    return dg.MetadataValue.table(records=records, schema=schema)


def fm_metadata(stats) -> dict:
    """An FMStats as asset metadata: calls, cache hits, seconds, and the rows that abstained by reason."""
    usage = stats.as_dict()
    abstains = usage.pop("fm_abstains")
    return {**usage, "fm_abstained_rows": sum(abstains.values()), "fm_abstains": dg.MetadataValue.json(abstains)}


def gx_result(success: bool, rows: list[dict]) -> dg.AssetCheckResult:
    """A Great Expectations validation as a check result with one row per expectation."""
    return dg.AssetCheckResult(passed=success, metadata={"expectations": table_md(pd.DataFrame(rows), 100)})
