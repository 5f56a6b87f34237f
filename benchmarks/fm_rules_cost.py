"""What labeling n rows costs with FM prompts vs with the rules mined from the FM (fm_rules), and how good each is.

Needs `fmops run TASK` first (reads the stored splits, prompt_scores and weak_label_matrix). In one run:

1. FM rate: the task's FM scores `--probe` fresh texts with no cache (texts/s, measured here).
2. Mining: the rules are mined again from the prompts' votes on the spec's fixed-size sample (seconds measured;
   its FM calls are the sample's rows, whatever n is).
3. For n = 10k and 100k rows (train texts drawn with replacement: the cost of applying rules depends on text
   lengths, not on which texts), the wall time of applying the mined rules, measured; the FM path's calls are
   n (one encoding per text) and its time n / the rate of step 1, projected, not run (100k rows would take
   the FM about half an hour here).
4. Quality on the held-out test split: each source's test coverage and precision where it votes, and the
   label model chosen on dev over prompts alone vs prompts + FM rules (test macro-F1).

    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/fm_rules_cost.py sms_spam youtube_spam ag_news
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from label_models_on_tasks import stored_labeling  # benchmarks/ is on sys.path when a script there runs

from fmops_pipelines.data.splits import class_balance, label_indices, part
from fmops_pipelines.fm.cache import FMCache
from fmops_pipelines.fm.exploration import calibrated_prompts
from fmops_pipelines.fm.factory import fm_from_spec
from fmops_pipelines.launcher import stored
from fmops_pipelines.supervision.label_matrix import META_COLUMNS, labeler_columns, votes, votes_for
from fmops_pipelines.supervision.label_models import choose_label_model, macro_f1
from fmops_pipelines.supervision.lfs import apply_lfs
from fmops_pipelines.supervision.mined_lfs import MiningConfig, labeling_functions, mine_from_votes


def fm_rate(spec, texts: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        fm = fm_from_spec(spec.fm, FMCache(Path(tmp) / "cache.sqlite"))
        prompt = calibrated_prompts(stored(spec.name, "prompt_scores"))[0].prompt
        fm.score(texts[:16], prompt)  # load the model before timing
        start = time.perf_counter()
        fm.score(texts[16:], prompt)
        return (len(texts) - 16) / (time.perf_counter() - start)


def chosen_test_f1(matrix: pd.DataFrame, columns: list[str], splits: pd.DataFrame, spec) -> tuple[str, float]:
    k, names = len(spec.label_names), spec.label_names
    m = matrix[META_COLUMNS + columns]
    dev, test = part(splits, "dev"), part(splits, "test")
    y_dev, y_test = label_indices(dev["label"], names), label_indices(test["label"], names)
    model, _ = choose_label_model("auto", votes(m, "train"), votes_for(m, dev["id"]), y_dev, k,
                                  class_balance(dev["label"], names), spec.label_model.epochs, spec.splits.seed)
    return model.kind, macro_f1(y_test, model.predict_proba(votes_for(m, test["id"])), k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--probe", type=int, default=400, help="fresh texts the FM scores to measure its rate")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    for task in args.tasks:
        spec, splits, matrix = stored_labeling(task)
        cfg = MiningConfig.from_spec(spec)  # the spec's settings, also where fm_rules is off
        rows = splits.merge(matrix[["id"]], on="id")
        prompt_cols = [c for c in labeler_columns(matrix) if not c.startswith("lf_")]
        start = time.perf_counter()
        rules, table = mine_from_votes(rows, matrix.set_index("id").loc[rows["id"], prompt_cols].to_numpy(),
                                       spec.label_names, cfg)
        mine_s = time.perf_counter() - start
        lfs = labeling_functions(rules)
        train_texts = part(splits, "train")["text"].tolist()
        rate = fm_rate(spec, train_texts[: args.probe + 16])
        sample = min(cfg.sample_size, len(train_texts))
        print(f"\n{task}: FM {spec.fm.model} at {rate:.1f} texts/s (measured on {args.probe} uncached texts); "
              f"{len(prompt_cols)} prompt labelers; mined {len(rules)} phrases of {len(table)} candidates into "
              f"{len(lfs)} rules in {mine_s:.2f}s from a {sample}-row sample")
        print(f"  {'rows':>8} {'FM calls (prompts)':>19} {'FM s (projected)':>17} {'FM calls (rules)':>17} "
              f"{'rules apply s':>14}")
        rng = np.random.default_rng(0)
        for n in args.sizes:
            texts = pd.DataFrame({"id": np.arange(n), "text": rng.choice(np.asarray(train_texts, dtype=object), n)})
            start = time.perf_counter()
            apply_lfs(lfs, texts, spec.label_names)
            apply_s = time.perf_counter() - start
            print(f"  {n:>8,} {n:>19,} {n / rate:>17,.0f} {sample:>17,} {apply_s:>14.1f}")
        test = part(splits, "test")
        y_test = label_indices(test["label"], spec.label_names)
        mined_votes = (apply_lfs(lfs, test[["id", "text"]], spec.label_names).to_numpy() if lfs
                       else np.zeros((len(test), 0)))
        prompt_votes = votes_for(matrix[META_COLUMNS + prompt_cols], test["id"])
        for name, v in [("prompts (any vote)", prompt_votes), ("FM rules (any vote)", mined_votes)]:
            voted = (v != -1)
            hit = voted.any(axis=1)
            correct = (v == y_test[:, None]) & voted
            precision = correct.sum() / max(voted.sum(), 1)
            print(f"  test: {name:<20} coverage {hit.mean():.3f}  precision of votes {precision:.3f}")
        base = chosen_test_f1(matrix, prompt_cols, splits, spec)
        print(f"  test macro-F1, label model chosen on dev: prompts {base[1]:.3f} ({base[0]})", end="")
        mined_cols = [c for c in labeler_columns(matrix) if c.startswith("lf_fm_")]
        if mined_cols:
            with_rules = chosen_test_f1(matrix, prompt_cols + mined_cols, splits, spec)
            print(f"; prompts + FM rules {with_rules[1]:.3f} ({with_rules[0]})")
        else:
            print("; the stored matrix has no FM rules (fm_rules disabled or none kept)")


if __name__ == "__main__":
    main()
