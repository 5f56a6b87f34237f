"""A finished training, kept so that the same training is not run twice.

A warm re-run of a task (same rows, labels and configs) used to retrain every n-gram student of the
specialist step: one per candidate label model, the anchor-rows check and each candidate architecture,
most of that step's time. Training is a function of its fingerprint (configs, texts, labels) and of the
seeded initial weights, so the result can be kept and reused: `fit(..., memo=path)` looks here first.

Only what training changed is stored. The n-gram student's embedding has 2**20 rows (64 MB per feature
family) of which a task's texts touch a few percent; rows no feature reached keep their seeded initial
values, so the memo holds the changed rows and a checksum of the initial weights it was taken against,
and is used only where the model about to train starts from those same weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

FORMAT = 2  # 2: checksums of a strided sample of the weights
SAMPLE_STRIDE, SAMPLE_ABOVE = 101, 100_000


def memo_path(checkpoint: Path) -> Path:
    """Beside the training's checkpoint (`<name>-roundN.pt`): `<name>-roundN.memo`."""
    return checkpoint.with_suffix(".memo")


def _checksum(tensor: torch.Tensor) -> tuple[float, float]:
    """Sum and sum of squares of the weights, of every 101st in a large tensor: another seed or initialisation
    changes every weight, and a sample keeps this cheap for a 2**20-row embedding, which a warm run checks for
    each of its trainings."""
    t = tensor.detach().reshape(-1)
    t = (t[::SAMPLE_STRIDE] if t.numel() > SAMPLE_ABOVE else t).double()
    return float(t.sum()), float((t * t).sum())


def _checksums(state: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    return {k: _checksum(v) for k, v in state.items()}


def _same_start(stored: dict[str, tuple[float, float]], initial: dict[str, tuple[float, float]]) -> bool:
    """Checksums equal up to summation order: a float64 sum of many floats differs in its last bits with the
    number of threads that summed it, while another seed or initialisation changes it in the leading digits."""
    return stored.keys() == initial.keys() and all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for k in stored for a, b in zip(stored[k], initial[k]))


def save(path: Path, fingerprint: str, initial: dict[str, torch.Tensor], final: dict[str, torch.Tensor],
         history: dict) -> None:
    """Write the memo atomically: changed rows of 2-D tensors, other tensors whole."""
    changes = {}
    for name, after in final.items():
        before = initial[name]
        if after.dim() == 2 and after.shape == before.shape:
            rows = (after != before).any(dim=1).nonzero().squeeze(1)
            changes[name] = ("rows", rows.cpu(), after[rows].detach().cpu())
        else:
            changes[name] = ("whole", after.detach().cpu())
    state = {"format": FORMAT, "torch": torch.__version__, "fingerprint": fingerprint,
             "initial": _checksums(initial), "changes": changes, "history": history}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


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
            or not _same_start(state["initial"], _checksums(initial)) or set(state["changes"]) != set(initial)):
        return None
    weights = {}
    for name, change in state["changes"].items():
        if change[0] == "rows":
            tensor = initial[name].detach().clone()
            tensor[change[1].to(tensor.device)] = change[2].to(tensor.device, tensor.dtype)
            weights[name] = tensor
        else:
            weights[name] = change[1]
    net.load_state_dict(weights)
    return state["history"]
