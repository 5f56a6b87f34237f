"""Training state kept as the rows that changed: what makes large embedding tables' checkpoints and memos small.

The n-gram student trains on the rows of its 2**20-per-family table that its texts touch (ngram.CompactTable):
a few thousand for a small task, ~10**5 for 67k short texts. Of a table larger than ROWS_ABOVE rows, training
changes only the rows a batch touched, and SparseAdam's two moments are zero everywhere else, so a checkpoint
(weights, best weights, two moments: ~512 MB when the student trained on the whole table, which took a 700-row run's
specialist step from 8 to 54 s when written every epoch) keeps those rows and their indices, a few MB. Whoever
reads the state re-draws the initial weights from the same seed (checked against checksums stored beside them) or
starts from zeros, and puts the stored rows back: the same tensors, bit for bit. Smaller tables are kept whole.

While it trains, the same holds of the initial weights and of the best epoch's weights (InitialWeights): a full
copy of each cost 64 MB per feature family per training, held beside SparseAdam's moments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

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
    index = _differing_rows(tensor, reference.to(tensor.device) if reference is not None else None).nonzero().squeeze(1)
    return Rows(tuple(tensor.shape), index, tensor.detach()[index].clone())


def _differing_rows(tensor: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
    """A boolean per row: its bits differ from the reference's (None: from zeros)."""
    words = _words(tensor)
    return ((words != _words(reference)) if reference is not None else words != 0).any(dim=1)


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


def load_into(net: torch.nn.Module, packed: dict) -> None:
    """Put a packed state (InitialWeights.pack) into `net`, which must still hold the initial weights it was packed
    against, in place: no copy of a large tensor is made."""
    tensors = net.state_dict()
    with torch.no_grad():
        for k, v in packed.items():
            if isinstance(v, Rows):
                tensors[k][v.index.to(tensors[k].device)] = v.values.to(tensors[k].device, tensors[k].dtype)
            else:
                tensors[k].copy_(v)


def _sparse_tables(net: torch.nn.Module, above: int = ROWS_ABOVE) -> dict[str, torch.nn.Parameter]:
    """The embedding tables of more than `above` rows with sparse gradients, by state-dict name: an optimiser that
    takes sparse gradients (SparseAdam) changes only the rows a batch touched."""
    return {f"{prefix}.weight" if prefix else "weight": m.weight for prefix, m in net.named_modules()
            if isinstance(m, torch.nn.Embedding | torch.nn.EmbeddingBag) and m.sparse
            and m.weight.dim() == 2 and m.weight.shape[0] > above}


MASK_ROWS_PER_LOOKUP = 64  # `coalesced` marks rows in a table of at most this many rows per lookup; sorts beyond


def coalesced(grad: torch.Tensor) -> torch.Tensor:
    """A sparse gradient over a table's rows with each touched row once, rows ascending, its lookups' values summed
    in the order the lookups came (so in the same order whatever the table's size or the thread count): what
    `coalesce()` returns, up to the order of those sums. On the compact tables students train (ngram.CompactTable:
    tens of thousands of rows against a batch's tens of thousands of lookups) the rows are marked in a boolean per
    table row and numbered by a cumulative sum, no sort (sms_spam's specialist step: 9.6 s where `coalesce()` took
    16 s of 92; docs/specialists.md); a table much larger than the batch is sorted (torch.unique)."""
    if grad.is_coalesced():
        return grad
    if grad.sparse_dim() != 1:
        return grad.coalesce()
    lookups, values = grad._indices()[0], grad._values()
    n_rows = grad.shape[0]
    if n_rows <= MASK_ROWS_PER_LOOKUP * max(len(lookups), 1):
        marked = torch.zeros(n_rows, dtype=torch.bool, device=lookups.device)
        marked[lookups] = True
        rows = marked.nonzero().squeeze(1)
        position = torch.empty(n_rows, dtype=torch.long, device=lookups.device)
        position[rows] = torch.arange(len(rows), device=lookups.device)
        position = position[lookups]
    else:
        rows, position = torch.unique(lookups, sorted=True, return_inverse=True)
    summed = values.new_zeros((len(rows), *values.shape[1:])).index_add_(0, position, values)
    # rows are unique and sorted by construction, so the invariants hold: opting out says so (torch warns when the
    # choice is left implicit, and checking would cost a pass over the indices every step)
    return torch.sparse_coo_tensor(rows.unsqueeze(0), summed, grad.shape, is_coalesced=True, check_invariants=False)


class InitialWeights:
    """The weights a training started from, kept without a copy of its large sparse tables.

    The best epoch's weights, checkpoints and memos are each packed against the initial weights (their changed
    rows). For a large table with sparse gradients a hook on its gradient records each row's value the first time
    a batch touches it, before the step changes it, so only touched rows are ever copied: with a word and a char
    family that is 256 MB less per training than full copies of the initial and best weights. Other tensors are
    cloned whole where a checkpoint or memo needs them (`keep_dense`); without, a packed state holds them whole.
    """

    def __init__(self, net: torch.nn.Module, keep_dense: bool = True):
        state = net.state_dict()
        self.checksums = checksums(state)
        self._tables = _sparse_tables(net)
        self._dense = ({k: v.detach().clone() for k, v in state.items() if k not in self._tables}
                       if keep_dense else {})
        self._seen = {k: torch.zeros(p.shape[0], dtype=torch.bool, device=p.device) for k, p in self._tables.items()}
        self._first: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {k: [] for k in self._tables}
        self._hooks = [p.register_hook(partial(self._on_grad, k)) for k, p in _sparse_tables(net, 0).items()]

    def _on_grad(self, name: str, grad: torch.Tensor) -> torch.Tensor:
        """Hands the optimiser every sparse table's gradient coalesced (`coalesced`: without a sort, and paid once
        per step, not again by the optimiser), and records a large table's rows."""
        grad = coalesced(grad)
        if name in self._tables:
            self.touch(name, grad.indices()[0])
        return grad

    def touch(self, name: str, rows: torch.Tensor) -> None:
        """Record the current values of `rows` (distinct) of table `name` not recorded before (they are still
        initial)."""
        seen = self._seen[name]
        rows = rows.to(seen.device)
        new = rows[~seen[rows]]
        if len(new):
            seen[new] = True
            self._first[name].append((new, self._tables[name].detach()[new].clone()))

    def touch_packed(self, packed: dict) -> None:
        """Before a resumed training loads a packed state into a net still at its initial weights: its rows."""
        for k, v in packed.items():
            if k in self._tables and isinstance(v, Rows):
                self.touch(k, v.index)

    def _first_rows(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        chunks = self._first[name]
        if len(chunks) != 1:
            table = self._tables[name]
            chunks[:] = [(torch.cat([c[0] for c in chunks]) if chunks else torch.zeros(0, dtype=torch.long, device=table.device),
                          torch.cat([c[1] for c in chunks]) if chunks else table.new_zeros((0, table.shape[1])))]
        return chunks[0]

    def pack(self, state: dict[str, torch.Tensor]) -> dict:
        """`state` (the net's) against these initial weights: a table as its changed rows (sorted), a large dense
        tensor the same where it was kept, every other tensor as a copy."""
        out = {}
        for k, v in state.items():
            if k in self._tables:
                index, first = self._first_rows(k)
                now = v.detach()[index]
                changed = _differing_rows(now, first) if len(index) else index.bool()
                order = index[changed].argsort()
                out[k] = Rows(tuple(v.shape), index[changed][order], now[changed][order])
            else:
                packed = rows_against(v, self._dense[k]) if k in self._dense else v
                out[k] = packed if isinstance(packed, Rows) else v.detach().clone()
        return out

    def restore(self, net: torch.nn.Module, packed: dict) -> None:
        """Put a state from `pack` back into `net` in place: each table's touched rows back to their initial
        values, then the packed rows."""
        tensors = net.state_dict()
        with torch.no_grad():
            for k, v in packed.items():
                if k in self._tables:
                    index, first = self._first_rows(k)
                    tensors[k][index] = first
                    tensors[k][v.index.to(first.device)] = v.values.to(first.device, first.dtype)
                else:
                    tensors[k].copy_(restore(v, self._dense.get(k)))

    def reference_checksums(self, packed: dict) -> dict[str, tuple[float, float]]:
        """Checksums of the initial tensors that `packed` holds only the changed rows of: what a reader must have
        re-drawn alike before it puts those rows back."""
        return {k: self.checksums[k] for k, v in packed.items() if isinstance(v, Rows)}

    def drawn_alike(self, stored: dict[str, tuple[float, float]]) -> bool:
        return same_start(stored, {k: self.checksums[k] for k in stored if k in self.checksums})

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []


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


def same_start(stored: dict[str, tuple[float, float]], initial: dict[str, tuple[float, float]]) -> bool:
    """Checksums equal up to summation order: a float64 sum of many floats differs in its last bits with the
    number of threads that summed it, while another seed or initialisation changes it in the leading digits."""
    return stored.keys() == initial.keys() and all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for k in stored for a, b in zip(stored[k], initial[k]))
