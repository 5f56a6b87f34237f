"""A finished training, kept so that the same training is not run twice.

A warm re-run of a task (same rows, labels and configs) used to retrain every n-gram student of the
specialist step: one per candidate label model, the anchor-rows check and each candidate architecture,
most of that step's time. Training is a function of its fingerprint (configs, texts, labels) and of the
seeded initial weights, so the result can be kept and reused: `fit(..., memo=path)` looks here first.

Only what training changed is stored (sparse_state): the changed rows of a large embedding table and a
checksum of the initial weights they were taken against, and the memo is used only where the model about
to train starts from those same weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fmops_pipelines.specialist import sparse_state

FORMAT = 3  # 2: checksums of a strided sample of the weights; 3: sparse_state's bitwise changed rows


def memo_path(checkpoint: Path) -> Path:
    """Beside the training's checkpoint (`<name>-roundN.pt`): `<name>-roundN.memo`."""
    return checkpoint.with_suffix(".memo")


def save(path: Path, fingerprint: str, initial: dict[str, tuple[float, float]], packed: dict,
         history: dict) -> None:
    """Write the memo atomically: the final weights as packed against the initial ones (InitialWeights.pack: the
    large tensors' changed rows, the others whole) and the initial weights' checksums."""
    state = {"format": FORMAT, "torch": torch.__version__, "fingerprint": fingerprint, "initial": initial,
             "weights": {k: _cpu(v) for k, v in packed.items()}, "history": history}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _cpu(value):
    if isinstance(value, sparse_state.Rows):
        return sparse_state.Rows(value.shape, value.index.cpu(), value.values.cpu())
    return value.detach().cpu()


def load(path: Path, net: torch.nn.Module, fingerprint: str) -> dict | None:
    """Put the memo's weights into `net` (still at its initial weights) and return the training's history, or
    None (and leave `net` alone) when there is no memo for this very training."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - an unreadable memo (e.g. from a crash mid-write elsewhere) is just absent
        return None
    initial = net.state_dict()
    if (state.get("format") != FORMAT or state["torch"] != torch.__version__ or state["fingerprint"] != fingerprint
            or not sparse_state.same_start(state["initial"], sparse_state.checksums(initial))
            or set(state["weights"]) != set(initial)):
        return None
    sparse_state.load_into(net, state["weights"])
    return state["history"]
