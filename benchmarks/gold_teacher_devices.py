"""The gold teacher's cost and quality per device: the measurement behind `gold_teacher.contrastive: auto`.

    # 1. where fmops is installed: each run's rows (fmops's own splits: gold, pool, test) and the packaged FM
    FMOPS_DATA_HOME=../shared/datasets .venv/bin/python benchmarks/gold_teacher_devices.py prepare \
        sms_spam youtube_spam ag_news --gold 200 --seeds 0 1 2 --out .gpu
    # 2. on each device: needs torch, scikit-learn, sentence-transformers, setfit, pydantic and mmh3, not fmops's
    #    services or its Dagster/MLflow stack, so it also runs on a machine that has a GPU and little else
    python benchmarks/gold_teacher_devices.py measure .gpu --device cuda [--no-setfit] [--seeds 0] [--csv FILE]

Per run (task, gold rows, seed) on one device: the FM's texts/s encoding every row (fmops's batch of 64 and a
batch of 512); the gold teacher as fmops fits it (`supervision.gold_teacher.teach`: each candidate per gold
fold, the kind chosen out of fold) with and without the SetFit candidate, each candidate's out-of-fold
macro-F1, its seconds for the folds and its held-out test macro-F1 fitted on all gold; and, per teacher kind,
an n-gram student (the shipped SpecialistSpec's `ngram`, on this device) trained on that teacher's labels of the
pool, early-stopped on gold: its test macro-F1 and training seconds. The model travels in fp16 (half the bytes)
and is widened back to fp32 before use. The CSV is rewritten after every run, so a run cut short keeps the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MODEL_DIR = "minilm-fp16"


def prepare(tasks: list[str], budgets: list[int], seeds: list[int], out: Path) -> None:
    from label_budget import variant_spec
    from sentence_transformers import SentenceTransformer

    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.data.splits import task_splits
    from fmops_pipelines.fm.local_models import resolve_model_path
    from fmops_pipelines.spec import TaskSpec

    out.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        for budget in budgets:
            for seed in seeds:
                spec = TaskSpec.model_validate({**variant_spec(task, "shipped", budget, seed), "name": task})
                splits, _ = task_splits(spec, load_dataset(spec), None)
                name = f"{task}_g{budget}_s{seed}"
                splits[["id", "split", "text", "label"]].to_parquet(out / f"{name}.parquet")
                (out / f"{name}.json").write_text(json.dumps({"task": task, "gold": budget, "seed": seed,
                                                              "labels": spec.label_names,
                                                              "fold_seed": spec.splits.seed}))
                print(f"{name}: {splits['split'].value_counts().to_dict()}")
    SentenceTransformer(str(resolve_model_path("all-MiniLM-L6-v2")), device="cpu").half().save(str(out / MODEL_DIR))


def encode_rate(model, texts: list[str], batch: int, device: str) -> tuple[np.ndarray, float]:
    import torch

    model.encode(texts[:64], batch_size=batch, normalize_embeddings=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    began = time.perf_counter()
    vecs = model.encode(texts, batch_size=batch, normalize_embeddings=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return vecs, len(texts) / (time.perf_counter() - began)


def student_on(labels: list[str], pool_texts: list[str], soft: np.ndarray, gold_texts: list[str], y_gold: np.ndarray,
               test_texts: list[str], y_test: np.ndarray, device: str) -> tuple[float, float]:
    """(test macro-F1, training seconds) of the shipped `ngram` student trained on one teacher's pool labels."""
    from sklearn.metrics import f1_score

    from fmops_pipelines.spec import SpecialistSpec
    from fmops_pipelines.specialist.selection import train_student

    began = time.perf_counter()
    trained = train_student(SpecialistSpec(), labels, "ngram", pool_texts, soft, [], gold_texts, y_gold,
                            device=device)
    seconds = time.perf_counter() - began
    pred = trained.model.predict_proba(test_texts).argmax(axis=1)
    return float(f1_score(y_test, pred, average="macro")), seconds


@dataclass
class PreparedRun:
    """One run `prepare` wrote: its rows in the splits' order, with each split's row positions and gold labels."""

    meta: dict
    rows: pd.DataFrame
    labels: list[str]
    texts: list[str]
    split: np.ndarray
    gold: np.ndarray
    pool: np.ndarray
    test: np.ndarray
    y_gold: np.ndarray
    y_test: np.ndarray

    @classmethod
    def load(cls, path: Path) -> PreparedRun:
        meta = json.loads(path.with_suffix(".json").read_text())
        rows = pd.read_parquet(path.with_suffix(".parquet"))
        labels, split = meta["labels"], rows["split"].to_numpy()
        gold, pool, test = (np.flatnonzero(split == s) for s in ("dev", "train", "test"))
        y = rows["label"].map({n: i for i, n in enumerate(labels)}).to_numpy()
        return cls(meta, rows, labels, rows["text"].tolist(), split, gold, pool, test, y[gold].astype(int),
                   y[test].astype(int))


def measure_run(path: Path, model_path: str, device: str, use_setfit: bool, iterations: int) -> dict:
    from sentence_transformers import SentenceTransformer
    from sklearn.metrics import f1_score

    from fmops_pipelines.data.splits import gold_folds
    from fmops_pipelines.supervision import gold_teacher as gt

    run = PreparedRun.load(path)
    meta, rows, labels, texts, split = run.meta, run.rows, run.labels, run.texts, run.split
    gold, pool, test, y_gold, y_test = run.gold, run.pool, run.test, run.y_gold, run.y_test
    k = len(labels)
    folds = gold_folds(y_gold, k, meta["fold_seed"])
    out = {"task": meta["task"], "gold": meta["gold"], "seed": meta["seed"], "device": device,
           "pool": len(pool), "test": len(test)}

    fm = SentenceTransformer(model_path, device=device)
    _, out["fm_texts_per_s_b512"] = encode_rate(fm, texts, 512, device)
    embeddings, out["fm_texts_per_s_b64"] = encode_rate(fm, texts, 64, device)
    del fm
    contrastive = gt.Contrastive(model_path, iterations, meta["seed"], texts) if use_setfit else None
    features = gt.Features.build(texts, split != "test", embeddings, contrastive)
    began = time.perf_counter()
    teacher = gt.teach(features, rows[["id", "split"]], y_gold, folds, labels, meta["seed"])
    out["teach_s"] = time.perf_counter() - began
    out["chosen"] = teacher.kind
    out["chosen_without_setfit"] = gt.best_kind({kd: s for kd, s in teacher.scores.items() if kd != gt.SETFIT})
    for kind, X in features.by_kind.items():
        out[f"oof_{kind}"] = teacher.scores[kind]
        out[f"folds_s_{kind}"] = teacher.seconds_by_kind[kind]
        if kind == teacher.kind:  # teach() fitted it on all gold already: its labels of the pool and test
            full = teacher.labels[teacher.labels["fold"] == gt.FULL].set_index("id")
            probs = np.zeros((len(texts), k))
            at = np.isin(rows["id"].to_numpy(), full.index)
            probs[at] = full.loc[rows["id"][at], [f"p_{n}" for n in labels]].to_numpy()
        else:
            began = time.perf_counter()
            every = np.arange(len(texts))
            probs = gt._proba(gt._fit(X, y_gold, meta["seed"], gold), gt._rows(X, every), k)
            out[f"full_fit_s_{kind}"] = time.perf_counter() - began
        out[f"test_{kind}"] = float(f1_score(y_test, probs[test].argmax(axis=1), average="macro"))
        if kind in (out["chosen_without_setfit"], gt.SETFIT):
            try:
                f1, seconds = student_on(labels, [texts[i] for i in pool], probs[pool], [texts[i] for i in gold],
                                         y_gold, [texts[i] for i in test], y_test, device)
                out[f"student_test_{kind}"], out[f"student_s_{kind}"] = f1, seconds
            except Exception as exc:  # noqa: BLE001 - the teacher's figures stand without the student's
                out[f"student_error_{kind}"] = f"{type(exc).__name__}: {exc}"
    return out


def measure(folder: Path, device: str, use_setfit: bool, iterations: int, csv: Path | None,
            seeds: list[int] | None = None) -> pd.DataFrame:
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory() as tmp:  # the fp16 copy widened back to fp32: SetFit trains in fp32
        model_path = str(Path(tmp) / "minilm")
        SentenceTransformer(str(folder / MODEL_DIR), device="cpu").float().save(model_path)
        config = Path(model_path) / "config.json"  # else every later load (SetFit's too) is fp16 again
        config.write_text(json.dumps({**json.loads(config.read_text()), "dtype": "float32"}, indent=2))
        results = []
        seed_of = {p: json.loads(p.with_suffix(".json").read_text())["seed"] for p in folder.glob("*.parquet")}
        runs = sorted((p for p, s in seed_of.items() if seeds is None or s in seeds),
                      key=lambda p: (seed_of[p], p.stem))  # every task's first seed first
        for path in runs:
            began = time.perf_counter()
            try:
                results.append(measure_run(path, model_path, device, use_setfit, iterations))
            except Exception as exc:  # noqa: BLE001 - one failed run is reported; the others still measure
                print(f"{path.stem}: failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            results[-1]["run_s"] = time.perf_counter() - began
            print(json.dumps(results[-1], default=lambda v: round(v, 4)), flush=True)
            if csv is not None:  # after every run: a run cut short by a time limit keeps what it measured
                pd.DataFrame(results).to_csv(csv, index=False, float_format="%.4f")
    return pd.DataFrame(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("tasks", nargs="+")
    p.add_argument("--gold", nargs="+", type=int, default=[200])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", type=Path, required=True)
    m = sub.add_parser("measure")
    m.add_argument("folder", type=Path)
    m.add_argument("--device", default="cpu")
    m.add_argument("--no-setfit", action="store_true")
    m.add_argument("--iterations", type=int, default=5, help="SetFit's num_iterations (fmops's default: 5)")
    m.add_argument("--csv", type=Path)
    m.add_argument("--seeds", nargs="+", type=int, help="only the prepared runs of these seeds (default: all)")
    args = parser.parse_args(argv)
    if args.verb == "prepare":
        prepare(args.tasks, args.gold, args.seeds, args.out)
        return 0
    table = measure(args.folder, args.device, not args.no_setfit, args.iterations, args.csv, args.seeds)
    return 0 if not table.empty else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
