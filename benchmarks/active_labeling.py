"""Review rounds against random rows: does the queue ask for the labels that help most? And are wrong gold labels
found?

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/active_labeling.py sms_spam \
        [--variant shipped|prompts_only] [--rounds 4] [--per-round 50] [--seeds 0 1 2] [--flip 0.05] \
        [--flip-draws 1] [--csv docs/active_labeling.csv] [--plot docs/active_labeling.png]

A simulated annotator answers with the dataset's own labels of rows whose labels the spec's gold cap hid (never a
test row). Per seed (`splits.gold_seed`: another draw of the ~200 gold rows, the same test split), two copies of
the task start from the same run (round 0 runs once, in the queue arm): one labels each round's review queue (`review.budget` = --per-round, no
re-checks, so both arms get the same number of new labels), the other the same number of pool rows drawn at
random. Both go through the real loop: `fmops review --export` / a CSV of random rows, the annotator fills in
`label`, the CSV import into the gold store, a whole `fmops run` (in this process, through Dagster). Printed:
held-out test macro-F1 of the specialist (and, in the CSV, of the gold teacher) after each round, per arm, mean
over seeds.

Wrong gold labels: on each seed's gold rows, --flip of the labels are flipped on purpose; the gold teacher is
cross-fitted on them as the pipeline does, and cleanlab's label-issue finder over its out-of-fold probabilities
(review.queue.recheck_rows) flags rows: precision and recall of the flagged rows, and at as many rows as flipped.
`--flip-draws N` averages N independent flips per seed (with ~17 flipped rows one row moves precision by 0.06);
`--rounds 0` measures only this.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_budget import variant_spec  # (the shipped spec, prompts-only variant, gold cap and seed)

ARMS = ("queue", "random")


def run(name: str) -> dict:
    from fmops_pipelines.launcher import run_job, stored
    from fmops_pipelines.spec import get_spec

    start = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        run_job(get_spec(name), f"{name}_lifecycle", out=quiet)
    summary, splits = stored(name, "evaluation"), stored(name, "splits")
    teacher = (summary or {}).get("baselines", {}).get("gold_teacher") or {}
    return {"test_macro_f1": summary["test"]["macro_f1"] if summary else None,
            "gold_teacher_macro_f1": teacher.get("macro_f1"),  # the gold rows' own model: less noisy than the student
            "gold_rows": int((splits["split"] == "dev").sum()), "run_seconds": round(time.perf_counter() - start, 1)}


def annotate(name: str, arm: str, per_round: int, rng: np.random.Generator, work: Path) -> int:
    """One round answered by the simulated annotator; returns the labels it gave."""
    from fmops_pipelines.launcher import stored
    from fmops_pipelines.review import rounds
    from fmops_pipelines.review.store import GoldStore
    from fmops_pipelines.spec import get_spec

    spec, store = get_spec(name), GoldStore()
    truth = stored(name, "dataset").assign(id=lambda d: d["id"].astype(str)).set_index("id")["label"]
    path = work / f"{name}-{arm}-{len(store.rounds(name)) + 1}.csv"
    if arm == "queue":
        rounds.export_round(spec, store, path)
        rows = pd.read_csv(path, dtype=str, keep_default_na=False)
        rows = rows[rows["kind"] == "label"]
    else:
        splits = stored(name, "splits")
        pool = splits.loc[splits["split"] == "train", "id"].astype(str)
        pool = pool[pool.map(truth).notna().to_numpy()]
        rows = pd.DataFrame({"id": rng.choice(pool.to_numpy(), size=min(per_round, len(pool)), replace=False)})
    rows = rows.assign(label=rows["id"].map(truth), annotator="simulated")
    rows = rows[rows["label"].notna()]
    rows[["id", "label", "annotator"]].to_csv(path, index=False)
    return rounds.import_file(spec, store, path).new


def flipped_gold(name: str, share: float, seed: int, draws: int = 1) -> dict:
    """Flip `share` of the gold labels, cross-fit the gold teacher on them, let cleanlab flag rows; with `draws`,
    that many independent flips of the same gold rows (the first the same as with one), each figure their mean:
    with ~17 flipped rows one row moves precision by 0.06."""
    found = [_flipped_once(name, share, seed, np.random.default_rng(seed if d == 0 else [seed, d]))
             for d in range(draws)]
    return {"draws": draws, **{k: float(np.mean([f[k] for f in found])) for k in found[0]}}


def _flipped_once(name: str, share: float, seed: int, rng: np.random.Generator) -> dict:
    from fmops_pipelines.data.splits import PICKED
    from fmops_pipelines.fm.cache import FMCache
    from fmops_pipelines.fm.factory import fm_from_spec
    from fmops_pipelines.launcher import stored
    from fmops_pipelines.paths import fm_cache_path
    from fmops_pipelines.review.queue import recheck_rows
    from fmops_pipelines.spec import get_spec
    from fmops_pipelines.supervision.gold_teacher import gold_oof, teach_splits

    spec = get_spec(name)
    splits = stored(name, "splits").copy()
    # gold a queue picked is trained on but never scored out of fold (the pipeline re-checks it no more than this):
    # the flips go to the randomly drawn gold, whose out-of-fold probabilities cleanlab reads
    picked = splits[PICKED].fillna(False).astype(bool) if PICKED in splits.columns else pd.Series(False, splits.index)
    sample = (splits["split"] == "dev") & ~picked
    gold = np.flatnonzero(sample.to_numpy())
    flip = rng.choice(gold, size=max(1, round(share * len(gold))), replace=False)
    names = spec.label_names
    splits.loc[flip, "label"] = [rng.choice([n for n in names if n != old]) for old in splits.loc[flip, "label"]]
    teacher = teach_splits(fm_from_spec(spec.fm, FMCache(fm_cache_path())), splits, names, seed)
    oof = gold_oof(teacher.labels).set_index("id")
    rows = splits[sample]
    probs = oof.loc[rows["id"], [f"p_{n}" for n in names]].to_numpy()
    flipped_ids = set(splits.loc[flip, "id"])
    out = {"flipped": len(flip)}
    for label, limit in (("all", len(rows)), ("at_k", len(flip))):
        found = set(recheck_rows(rows.reset_index(drop=True), probs, names, limit)["id"])
        hits = len(found & flipped_ids)
        out |= {f"flagged_{label}": len(found), f"precision_{label}": hits / max(1, len(found)),
                f"recall_{label}": hits / len(flip)}
    return out


def start_arms(name: str, others: list[str]) -> None:
    """Copy round 0's stored splits and dataset to the other arms: their first round draws from that pool."""
    import shutil

    from fmops_pipelines.paths import storage_dir

    for other in others:
        (storage_dir() / other).mkdir(parents=True, exist_ok=True)
        for f in (storage_dir() / name).iterdir():
            if f.stem in ("splits", "dataset"):
                shutil.copy2(f, storage_dir() / other / f.name)


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(frame.groupby(["task", "variant"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, ((task, variant), part) in zip(axes[0], groups):
        for arm, style in zip(ARMS, ("-o", "--s")):
            mean = part[part["arm"] == arm].groupby("new_labels")["test_macro_f1"].mean()
            ax.plot(mean.index, mean.to_numpy(), style, label=arm)
        ax.set_title(f"{task} ({variant})")
        ax.set_xlabel("labels added by review rounds")
        ax.set_ylabel("specialist test macro-F1 (mean of seeds)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--variant", default="shipped", choices=["shipped", "prompts_only"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=50)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--gold", type=int, default=200, help="the gold cap each run starts from")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS),
                        help="which arms to run (a change that cannot move the random arm re-runs the queue's only)")
    parser.add_argument("--flip", type=float, default=0.05)
    parser.add_argument("--flip-draws", type=int, default=1, help="independent flips per seed, averaged")
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--resume", action="store_true", help="keep the rows of --csv (same FMOPS_HOME) and run "
                        "only the arms it lacks")
    args = parser.parse_args()

    home = os.environ.setdefault("FMOPS_HOME", tempfile.mkdtemp(prefix="fmops-active-labeling-"))
    assets, work = Path(tempfile.mkdtemp(prefix="fmops-al-assets-")), Path(tempfile.mkdtemp(prefix="fmops-al-csv-"))
    for task in args.tasks:
        (assets / task).mkdir()
        for f in (Path("assets") / task).iterdir():
            (assets / task / f.name).write_bytes(f.read_bytes())
    os.environ["FMOPS_ASSETS_DIR"] = str(assets)
    from fmops_pipelines.launcher import prepare_environment, quiet_libraries, stored

    prepare_environment()
    quiet_libraries()
    print(f"FMOPS_HOME={home}", flush=True)
    rows, noise = [], []
    flips_csv = args.csv.with_name(args.csv.stem + "_flips.csv") if args.csv else None
    if args.resume and args.csv and args.csv.exists():
        rows = pd.read_csv(args.csv).to_dict("records")
        noise = pd.read_csv(flips_csv).to_dict("records") if flips_csv.exists() else []
    counts = pd.Series([(x["task"], x["seed"], x["arm"]) for x in rows]).value_counts()
    done = {k for k, n in counts.items() if n == args.rounds + 1}
    rows = [x for x in rows if (x["task"], x["seed"], x["arm"]) in done]
    for task in args.tasks:
        for seed in args.seeds:
            spec = variant_spec(task, args.variant, args.gold, seed)
            spec["review"] = {"budget": args.per_round, "rechecks": 0, "retrain_after": None}
            rng = np.random.default_rng(seed)
            for arm in [a for a in ARMS if a in args.arms]:
                name = f"al_{task}_{args.variant}_s{seed}_{arm}"
                (assets / name).mkdir(exist_ok=True)
                (assets / name / "task.yaml").write_text(yaml.safe_dump(spec))
                if (task, seed, arm) in done:
                    continue
                if arm != ARMS[0] and stored(name, "splits") is None:  # resumed after the queue arm
                    start_arms(f"al_{task}_{args.variant}_s{seed}_{ARMS[0]}", [name])
                added = 0
                for r in range(args.rounds + 1):
                    if r:
                        added += annotate(name, arm, args.per_round, rng, work)
                    if r == 0 and arm != ARMS[0]:  # the same spec and seed: round 0 is the queue arm's run
                        row = {**next(x for x in rows if (x["task"], x["seed"], x["arm"], x["round"])
                                      == (task, seed, ARMS[0], 0)), "arm": arm}
                    else:
                        row = {"task": task, "variant": args.variant, "seed": seed, "arm": arm, "round": r,
                               "new_labels": added, **run(name)}
                        if r == 0:  # round 0's splits and dataset start the other arm
                            start_arms(name, [f"al_{task}_{args.variant}_s{seed}_{a}" for a in ARMS[1:]])
                    rows.append(row)
                    print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
                    if args.csv:
                        args.csv.parent.mkdir(parents=True, exist_ok=True)
                        pd.DataFrame(rows).to_csv(args.csv, index=False)
                if arm == ARMS[0] and args.flip:
                    found = {"task": task, "variant": args.variant, "seed": seed,
                             **flipped_gold(name, args.flip, seed, args.flip_draws)}
                    noise.append(found)
                    if flips_csv:
                        pd.DataFrame(noise).to_csv(flips_csv, index=False)
                    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in found.items()),
                          flush=True)
    frame = pd.DataFrame(rows)
    table = frame.pivot_table(index=["task", "variant", "new_labels"], columns="arm", values="test_macro_f1",
                              aggfunc="mean")
    if set(ARMS) <= set(table.columns):
        table["queue_minus_random"] = table["queue"] - table["random"]
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(f"\nspecialist test macro-F1, mean over seeds {args.seeds}:\n{table}")
        if noise:
            print(f"\nflipped gold labels found (cleanlab), mean over seeds:\n"
                  f"{pd.DataFrame(noise).groupby(['task', 'variant']).mean(numeric_only=True).drop(columns='seed')}")
    if args.plot:
        plot(frame, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
