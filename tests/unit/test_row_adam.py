"""RowAdam: SparseAdam's update, bit for bit, through gathered rows."""

from __future__ import annotations

import copy

import pytest
import torch

from fmops_pipelines.specialist.row_adam import RowAdam


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Module()
    net.bag = torch.nn.EmbeddingBag(50, 4, mode="sum", sparse=True)
    net.head = torch.nn.Linear(4, 3)
    return net


def _steps(net, opt, batches, coalesce_first: bool) -> list[float]:
    """Train on `batches` (lists of (rows, weights) bags); coalesce_first: a hook hands the optimiser the gradient
    already coalesced, as sparse_state.InitialWeights does."""
    hook = net.bag.weight.register_hook(lambda g: g.coalesce()) if coalesce_first else None
    losses = []
    for bags in batches:
        rows = torch.tensor([r for bag, _ in bags for r in bag])
        weights = torch.tensor([w for _, ws in bags for w in ws])
        offsets = torch.tensor([0, *torch.tensor([len(b) for b, _ in bags]).cumsum(0).tolist()[:-1]])
        opt.zero_grad()
        loss = net.head(net.bag(rows, offsets, per_sample_weights=weights)).logsumexp(1).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    if hook:
        hook.remove()
    return losses


BATCHES = [[([1, 2, 2, 7], [1.0, 0.5, 0.5, 2.0]), ([7, 9], [1.0, 1.0])],  # repeated rows within and across bags
           [([3], [1.0]), ([1, 49, 3], [0.3, 0.3, 0.3])],
           [([2, 2, 2], [1.0, -1.0, 0.25])],
           [([0, 1, 2, 3, 4, 5], [1.0] * 6), ([9], [4.0])]] * 3


@pytest.mark.parametrize("coalesce_first", [False, True])
def test_row_adam_moves_the_weights_and_moments_exactly_as_sparse_adam(coalesce_first):
    """The same losses, weights and moments as torch's SparseAdam, to the last bit, over steps that revisit rows
    with repeats inside a batch; rows no batch touched stay as they were."""
    ref, new = _net(0), _net(0)
    untouched = ref.bag.weight.detach()[10:49].clone()
    ref_opt, new_opt = torch.optim.SparseAdam(ref.bag.parameters(), lr=0.05), RowAdam(new.bag.parameters(), lr=0.05)
    assert _steps(ref, ref_opt, BATCHES, coalesce_first) == _steps(new, new_opt, BATCHES, coalesce_first)
    assert torch.equal(ref.bag.weight, new.bag.weight)
    assert torch.equal(new.bag.weight.detach()[10:49], untouched)
    ref_state, new_state = ref_opt.state[ref.bag.weight], new_opt.state[new.bag.weight]
    assert ref_state["step"] == new_state["step"] == len(BATCHES)
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(ref_state[key], new_state[key]), key


def test_row_adam_resumes_from_sparse_adam_state():
    """Its state is SparseAdam's: a checkpoint written by either resumes in the other to the same weights."""
    ref, new = _net(1), _net(1)
    ref_opt = torch.optim.SparseAdam(ref.bag.parameters(), lr=0.05)
    _steps(ref, ref_opt, BATCHES[:4], False)
    new.load_state_dict(ref.state_dict())
    new_opt = RowAdam(new.bag.parameters(), lr=0.05)
    new_opt.load_state_dict(copy.deepcopy(ref_opt.state_dict()))  # loading shares the tensors it is given
    assert _steps(ref, ref_opt, BATCHES[4:], False) == _steps(new, new_opt, BATCHES[4:], False)
    assert torch.equal(ref.bag.weight, new.bag.weight)


def test_row_adam_refuses_a_dense_gradient():
    net = torch.nn.Linear(3, 2)
    opt = RowAdam([net.weight], lr=0.1)
    net(torch.ones(1, 3)).sum().backward()
    with pytest.raises(RuntimeError, match="sparse gradients"):
        opt.step()


@pytest.mark.parametrize("threads", [1, 2])
def test_coalesced_sums_each_row_in_lookup_order_on_either_path(threads, monkeypatch):
    """sparse_state.coalesced: the rows `coalesce()` gives, each row's lookups summed in the order they came, the
    same bits whether the rows were marked (a table near the batch's size) or sorted (a much larger one), at any
    thread count, so a compact table and the whole table train alike."""
    from fmops_pipelines.specialist import sparse_state

    torch.manual_seed(0)
    lookups = torch.randint(0, 300, (4000,)) * 7  # most rows looked up many times
    values = torch.randn(4000, 16) * torch.logspace(-4, 4, 4000).unsqueeze(1)  # sums whose order shows in the bits
    grad = torch.sparse_coo_tensor(lookups.unsqueeze(0), values, (2100, 16), check_invariants=False)  # as backward's
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        marked = sparse_state.coalesced(grad)
        monkeypatch.setattr(sparse_state, "MASK_ROWS_PER_LOOKUP", 0)
        sorted_ = sparse_state.coalesced(grad)
    finally:
        torch.set_num_threads(previous)
    reference = grad.coalesce()
    for out in (marked, sorted_):
        assert out.is_coalesced() and torch.equal(out._indices(), reference._indices())
    expected = torch.stack([sum(values[lookups == row], torch.zeros(16)) for row in reference._indices()[0].tolist()])
    assert torch.equal(marked._values(), expected) and torch.equal(sorted_._values(), expected)
    assert torch.equal(sparse_state.coalesced(marked)._values(), expected)  # already coalesced: as it is


def test_a_gradient_coalesced_before_autograd_dropped_its_flag_is_not_sorted_again(monkeypatch):
    """Autograd stores a hook's coalesced gradient in `.grad` without the coalesced flag; RowAdam sees its rows are
    each once and ascending and skips `coalesce()` (a sort and a copy), and still coalesces a gradient with repeats."""
    net = _net(0)
    net.bag.weight.register_hook(lambda g: g.coalesce())
    opt = RowAdam(net.bag.parameters(), lr=0.05)
    net.head(net.bag(torch.tensor([1, 2, 2, 7]), torch.tensor([0, 2]))).sum().backward()
    assert not net.bag.weight.grad.is_coalesced() and net.bag.weight.grad._indices()[0].tolist() == [1, 2, 7]
    calls = []
    real = torch.Tensor.coalesce
    monkeypatch.setattr(torch.Tensor, "coalesce", lambda self: calls.append(1) or real(self))
    opt.step()
    assert calls == []
    net.bag.weight.grad = torch.sparse_coo_tensor(torch.tensor([[7, 2, 7]]), torch.ones(3, 4), (50, 4),
                                                   check_invariants=False)
    opt.step()
    assert calls == [1]
