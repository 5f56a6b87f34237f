"""The one training loop every student shares: noise-aware loss on probabilistic labels, early stopping on
dev macro-F1, and per-epoch checkpoints from which an interrupted run resumes to the same result.

A student brings its network, optimisers and two callables (the loss of a batch of row indices, and
dev predictions); this loop owns the epochs, the RNGs, the best-epoch bookkeeping and the checkpoint file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from sklearn.metrics import f1_score

from fmops_pipelines import progress
from fmops_pipelines.paths import memos_enabled
from fmops_pipelines.specialist import sparse_state, training_memo
from fmops_pipelines.specialist.thread_choice import ThreadChoice

Loss = Literal["soft_ce", "confidence_weighted", "hard"]


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 0.001
    weight_decay: float = 0.0
    patience: int = 5
    seed: int = 0
    loss: Loss = "soft_ce"
    warmup_ratio: float = 0.0  # linear warm-up then linear decay of the learning rate when > 0 (encoders)
    device: str | None = None  # None: cuda when present, else cpu
    deterministic: bool = False  # deterministic kernels where torch has them (deterministic_algorithms)
    solver: str = "adam"  # n-gram students: "lbfgs" fits them as a logistic regression instead (ngram_convex.py)
    class_weight: str | None = None  # "balanced": the convex fit weights classes inversely to their counts
    keep_last: bool = False  # True: train exactly `epochs` and keep the last weights (a refit whose epoch count
    # was chosen on held-out rows: its own dev rows fitted it, so they cannot choose)

    def torch_device(self):
        import torch

        return torch.device(self.device) if self.device else None


@dataclass
class TrainHistory:
    """Per-epoch curves and the epoch whose weights were kept (best dev macro-F1)."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_dev_macro_f1: float = 0.0
    seconds: float = 0.0
    samples_per_s: float = 0.0
    device: str = "cpu"
    resumed_after_epoch: int = 0  # >0: this training picked up a killed one's checkpoint after that epoch
    memoized: bool = False  # True: this very training had finished before and its result was reused


def noise_aware_loss(logits: torch.Tensor, targets: torch.Tensor, kind: Loss) -> torch.Tensor:
    """Cross-entropy against the label model's probabilities.

    soft_ce: expected cross-entropy under the probabilistic label (Ratner et al., the Snorkel end-model
    loss): a 0.6/0.4 row pulls half as hard as a 0.95/0.05 one and towards the uncertainty.
    confidence_weighted: hard argmax targets, each row weighted by the label model's confidence.
    hard: plain cross-entropy on the argmax (the "majority-vote labels" baseline).
    """
    log_p = torch.log_softmax(logits.float(), dim=1)
    if kind == "soft_ce":
        return -(targets * log_p).sum(dim=1).mean()
    conf, hard = targets.max(dim=1)
    per_row = -log_p.gather(1, hard.unsqueeze(1)).squeeze(1)
    if kind == "confidence_weighted":
        return (conf * per_row).sum() / conf.sum().clamp(min=1e-6)
    if kind == "hard":
        return per_row.mean()
    raise ValueError(f"unknown loss '{kind}'")


def fingerprint(configs: Sequence[object], texts: Sequence[str], soft_labels: np.ndarray) -> str:
    """What a checkpoint was trained on: configs, texts and labels. A changed input never resumes."""
    digest = hashlib.sha256(json.dumps([asdict(c) for c in configs], sort_keys=True, default=str).encode())
    digest.update("\x00".join(texts).encode())
    digest.update(np.ascontiguousarray(soft_labels, dtype=np.float32).tobytes())
    return digest.hexdigest()


def checkpoint_every_s() -> float:
    """Least training seconds between checkpoints (FMOPS_CHECKPOINT_EVERY_S, default 30; 0: every epoch).

    A killed run loses at most this much training. The fast student's checkpoint is small (sparse_state: the
    embedding rows its texts touched) but still costs a pass over its tensors against ~0.5 s epochs,
    while an encoder's minutes-long epochs are each worth saving.
    """
    return float(os.environ.get("FMOPS_CHECKPOINT_EVERY_S", "30"))


@contextmanager
def deterministic_algorithms(enabled: bool):
    """While training: torch's deterministic kernels where it has them (a warning, not an error, where it
    has none), cuDNN autotuning off and cuBLAS's fixed workspace, so a GPU run repeats itself; the
    process's previous settings come back afterwards. On CPU the students are deterministic already."""
    if not enabled:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]
        if before[3] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


BUCKET_BATCHES = 50  # most batches per length-sorted window (Hugging Face's LengthGroupedSampler uses the same)


def bucket_window(n_rows: int, batch_size: int) -> int:
    """Batches per length-sorted window: up to BUCKET_BATCHES, yet at least four windows over the data, so a
    small training set is not sorted whole (on sms_spam, long rows are mostly spam: one window sorted whole
    makes batches of one class, and 160 rows then learn less in two epochs than shuffled ones)."""
    return max(1, min(BUCKET_BATCHES, n_rows // (batch_size * 4)))


def epoch_batches(rng: np.random.Generator, n_rows: int, batch_size: int,
                  lengths: np.ndarray | None = None) -> list[np.ndarray]:
    """One epoch's batches of row indices, every row once. With `lengths` (tokens per row), length-bucketed:
    a random permutation is cut into windows of bucket_window() batches, each window sorted by length and cut
    into batches, and the batch order shuffled, so a batch pads to a length near its rows' own (a
    transformer's cost is the padded length) while the rows still meet new neighbours every epoch."""
    order = rng.permutation(n_rows)
    if lengths is None:
        return [order[b : b + batch_size] for b in range(0, n_rows, batch_size)]
    window = batch_size * bucket_window(n_rows, batch_size)
    batches = []
    for w in range(0, n_rows, window):
        chunk = order[w : w + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a crash mid-save keeps the previous epoch's checkpoint


_resume_logs: list[list[int]] = []  # one per open resumes_recorded() block


@contextmanager
def resumes_recorded():
    """The epochs after which trainings inside the block resumed a checkpoint, whichever code path trained them
    and whether or not their student was kept: what a step reports (a killed run's last training may be one
    whose student a later choice drops)."""
    log: list[int] = []
    _resume_logs.append(log)
    try:
        yield log
    finally:
        _resume_logs.remove(log)


def fit(net: torch.nn.Module, optimizers: list | Callable[[], list], schedulers: list, n_rows: int,
        batch_loss: Callable[[np.ndarray], torch.Tensor], predict_dev: Callable[[], np.ndarray], y_dev: np.ndarray,
        n_classes: int, train_cfg: TrainConfig, device: torch.device, fingerprint_: str = "",
        checkpoint: Path | None = None, on_epoch=None, max_grad_norm: float | None = None,
        lengths: np.ndarray | None = None, memo: Path | None = None, choose_threads: bool = False) -> TrainHistory:
    """Run epochs until `epochs` or `patience` stale epochs; leaves the best dev epoch's weights in `net`.
    `lengths` (per row): length-bucketed batches (epoch_batches). `choose_threads`: each step runs on one CPU
    thread or all, whichever timed faster lately (thread_choice.py); only for trainings whose weights do not
    depend on the thread count.

    With `checkpoint`, the full state (weights, optimisers, schedulers, RNGs, best epoch; large tensors as their
    changed rows, sparse_state) is written after an epoch once checkpoint_every_s() of training has passed since
    the last write; a run with the same fingerprint and initial weights resumes after the checkpointed epoch,
    and the file is removed once training completes.
    With `memo` (and memos_enabled()), the finished training is kept there (training_memo) and the same
    training later returns it without running: its curve is replayed to on_epoch. `optimizers` may be a function
    that builds them, called only when training runs: the first torch optimiser built in a process imports
    torch._dynamo (1-2 s), which a memoised training need not pay.
    """
    memo = memo if memo is not None and memos_enabled() else None
    with deterministic_algorithms(train_cfg.deterministic):
        return _fit(net, optimizers, schedulers, n_rows, batch_loss, predict_dev, y_dev, n_classes, train_cfg, device,
                    fingerprint_, checkpoint, on_epoch, max_grad_norm, lengths, choose_threads and device.type == "cpu",
                    memo)


def _fit(net, optimizers, schedulers, n_rows, batch_loss, predict_dev, y_dev, n_classes, train_cfg, device,
         fingerprint_, checkpoint, on_epoch, max_grad_norm, lengths, choose_threads, memo) -> TrainHistory:
    if memo is not None:
        done = training_memo.load(memo, net, fingerprint_)
        if done is not None:
            history = TrainHistory(**{**done, "resumed_after_epoch": 0, "memoized": True})
            net.eval()
            for row in history.epochs if on_epoch else []:
                on_epoch(row)
            return history
    optimizers = optimizers() if callable(optimizers) else optimizers
    initial = sparse_state.InitialWeights(net, keep_dense=bool(memo or checkpoint))
    threads = ThreadChoice(enabled=choose_threads)
    try:
        return _epochs(net, optimizers, schedulers, n_rows, batch_loss, predict_dev, y_dev, n_classes, train_cfg,
                       device, fingerprint_, checkpoint, on_epoch, max_grad_norm, lengths, memo, initial, threads)
    finally:
        threads.close()
        initial.close()


def _epochs(net, optimizers, schedulers, n_rows, batch_loss, predict_dev, y_dev, n_classes, train_cfg, device,
            fingerprint_, checkpoint, on_epoch, max_grad_norm, lengths, memo, initial, threads) -> TrainHistory:
    """The epochs of one training; the best epoch's weights are kept packed against `initial` (its changed rows)."""
    torch.manual_seed(train_cfg.seed)
    rng = np.random.default_rng(train_cfg.seed)
    history = TrainHistory(device=str(device))
    best_state, stale, first_epoch = None, 0, 1
    if checkpoint and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["fingerprint"] == fingerprint_ and initial.drawn_alike(state.get("initial", {})):
            initial.touch_packed(state["net"])  # the net still holds its initial weights: record them first
            initial.touch_packed(state["best_state"])
            sparse_state.load_into(net, state["net"])
            for obj, obj_state in zip([*optimizers, *schedulers], state["optimizers"]):
                obj.load_state_dict(sparse_state.unpack_zeros(obj_state))
            rng.bit_generator.state = state["numpy_rng"]
            torch.set_rng_state(state["torch_rng"])
            best_state = state["best_state"]
            stale, first_epoch = state["stale"], state["epoch"] + 1
            history.epochs, history.best_epoch, history.best_dev_macro_f1 = (
                state["epochs"], state["best_epoch"], state["best_dev_macro_f1"])
            history.resumed_after_epoch = state["epoch"]
            for log in _resume_logs:
                log.append(state["epoch"])
    start = last_saved = time.perf_counter()
    every_s = checkpoint_every_s()
    # at most this many samples: early stopping ends most trainings sooner, so the ETA is an upper bound
    tracker = progress.track("training", n_rows * (train_cfg.epochs - first_epoch + 1), "samples")
    tracker.bounded = True
    student = checkpoint.stem if checkpoint else "a student"  # e.g. ngram_char-round1, teacher-stacked-round1
    for epoch in range(first_epoch, train_cfg.epochs + 1):
        if stale >= train_cfg.patience:
            break
        net.train()
        total = 0.0
        tracker.what = f"training {student} on {device.type}, epoch {epoch}/{train_cfg.epochs}"
        for idx in epoch_batches(rng, n_rows, train_cfg.batch_size, lengths):
            tracker.advance(len(idx))
            threads.before_step()
            loss = batch_loss(idx)
            for opt in optimizers:
                opt.zero_grad()
            loss.backward()
            if max_grad_norm:
                torch.nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
            for obj in [*optimizers, *schedulers]:
                obj.step()
            total += loss.item() * len(idx)
            threads.after_step()
        net.eval()
        dev_pred = predict_dev()
        dev_f1 = float(f1_score(y_dev, dev_pred, average="macro", labels=range(n_classes), zero_division=0))
        row = {"epoch": epoch, "train_loss": total / max(n_rows, 1), "dev_macro_f1": dev_f1,
               "dev_accuracy": float((dev_pred == y_dev).mean())}
        history.epochs.append(row)
        improved = dev_f1 > history.best_dev_macro_f1 + 1e-4 or best_state is None or train_cfg.keep_last
        if improved:
            history.best_epoch, history.best_dev_macro_f1 = epoch, dev_f1
            best_state = initial.pack(net.state_dict())
            stale = 0
        else:
            stale += 1
        if checkpoint and time.perf_counter() - last_saved >= every_s:
            packed = best_state if improved else initial.pack(net.state_dict())
            _save_checkpoint(checkpoint, {
                "fingerprint": fingerprint_, "initial": initial.reference_checksums(packed),
                "epoch": epoch, "net": packed,
                "optimizers": [sparse_state.pack_zeros(obj.state_dict()) for obj in [*optimizers, *schedulers]],
                "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "best_state": best_state,
                "stale": stale, "epochs": history.epochs, "best_epoch": history.best_epoch,
                "best_dev_macro_f1": history.best_dev_macro_f1})
            last_saved = time.perf_counter()
        if on_epoch:
            on_epoch(row)
    tracker.finish()
    history.seconds = time.perf_counter() - start
    ran = len(history.epochs) - (first_epoch - 1)  # epochs trained in this call (not the resumed ones)
    history.samples_per_s = n_rows * ran / max(history.seconds, 1e-9)
    initial.restore(net, best_state)
    net.eval()
    if memo is not None:
        training_memo.save(memo, fingerprint_, initial.checksums, best_state, asdict(history))  # what the net now holds
    if checkpoint:
        checkpoint.unlink(missing_ok=True)
    return history
