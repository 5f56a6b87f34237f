"""Training state kept as the rows that changed: what makes the n-gram student's checkpoints and memos small.

The n-gram student's embedding has 2**20 rows per feature family, of which a task's texts touch a few
percent. Its weights differ from their seeded initial values only in those rows, and SparseAdam's two
moments are zero everywhere else, so a checkpoint (weights, best weights, two moments: ~512 MB dense, which
took a 700-row run's specialist step from 8 to 54 s when written every epoch) keeps those rows and their
indices, a few MB. Whoever reads the state re-draws the initial weights from the same seed (checked against checksums
stored beside them) or starts from zeros, and puts the stored rows back: the same tensors, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

ROWS_ABOVE = 65_536  # 2-D tensors with more rows are stored as their changed rows (an encoder's 30k-word
# vocabulary, which AdamW's weight decay changes whole, is stored as it is)
SAMPLE_STRIDE, SAMPLE_ABOVE = 101, 100_000
_SAME_SIZE_INT = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass(frozen=True)
class Rows:
    """A large 2-D tensor as the rows where it differs from its reference (initial weights, or zeros)."""

    shape: tuple[int, ...]
    index: torch.Tensor
    values: torch.Tensor


def _words(t: torch.Tensor) -> torch.Tensor:
    """A 2-D tensor's bits as integers (-0.0 and NaN payloads compare as what they are), 8 bytes at a time
    where its rows allow: half the comparisons of 4-byte floats."""
    bits = t.detach().contiguous().view(_SAME_SIZE_INT[t.element_size()])
    return bits.view(torch.int64) if t.shape[1] * t.element_size() % 8 == 0 else bits


def rows_against(tensor: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor | Rows:
    """`tensor` itself, or, when it is a large 2-D one, its rows that differ from `reference` (None: zeros)."""
    if tensor.dim() != 2 or tensor.shape[0] <= ROWS_ABOVE or (reference is not None and reference.shape != tensor.shape):
        return tensor
    words = _words(tensor)
    changed = (words != _words(reference.to(tensor.device))) if reference is not None else words
    index = changed.any(dim=1).nonzero().squeeze(1)
    return Rows(tuple(tensor.shape), index, tensor.detach()[index].clone())


def restore(value, reference: torch.Tensor | None = None):
    """The tensor `rows_against` was given (anything else passes through)."""
    if not isinstance(value, Rows):
        return value
    if reference is None:
        out = torch.zeros(value.shape, dtype=value.values.dtype, device=value.values.device)
    else:
        out = reference.detach().clone()
    out[value.index.to(out.device)] = value.values.to(out.device, out.dtype)
    return out


def pack_weights(state: dict[str, torch.Tensor], initial: dict[str, torch.Tensor]) -> dict:
    """A network's state dict against its initial weights."""
    return {k: rows_against(v, initial.get(k)) for k, v in state.items()}


def unpack_weights(packed: dict, initial: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: restore(v, initial.get(k)) for k, v in packed.items()}


def _map_leaves(obj, fn):
    """`fn` applied to every tensor (or Rows) in nested dicts, lists and tuples; the rest kept."""
    if isinstance(obj, torch.Tensor | Rows):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_leaves(v, fn) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_map_leaves(v, fn) for v in obj)
    return obj


def pack_zeros(obj):
    """An optimiser's state dict (nested dicts and lists) with its large moments against zeros."""
    return _map_leaves(obj, rows_against)


def unpack_zeros(obj):
    return _map_leaves(obj, restore)


def _checksum(tensor: torch.Tensor) -> tuple[float, float]:
    """Sum and sum of squares of the weights, of every 101st in a large tensor: another seed or initialisation
    changes every weight, and a sample keeps this cheap for a 2**20-row embedding, which a warm run checks for
    each of its trainings."""
    t = tensor.detach().reshape(-1)
    t = (t[::SAMPLE_STRIDE] if t.numel() > SAMPLE_ABOVE else t).double()
    return float(t.sum()), float((t * t).sum())


def checksums(state: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    return {k: _checksum(v) for k, v in state.items()}


def reference_checksums(packed: dict, initial: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    """Checksums of the initial tensors that `packed` holds only the changed rows of: what a reader must have
    re-drawn alike before it puts those rows back."""
    return {k: _checksum(initial[k]) for k, v in packed.items() if isinstance(v, Rows)}


def drawn_alike(stored: dict[str, tuple[float, float]], initial: dict[str, torch.Tensor]) -> bool:
    return same_start(stored, {k: _checksum(initial[k]) for k in stored if k in initial})


def same_start(stored: dict[str, tuple[float, float]], initial: dict[str, tuple[float, float]]) -> bool:
    """Checksums equal up to summation order: a float64 sum of many floats differs in its last bits with the
    number of threads that summed it, while another seed or initialisation changes it in the leading digits."""
    return stored.keys() == initial.keys() and all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for k in stored for a, b in zip(stored[k], initial[k]))
