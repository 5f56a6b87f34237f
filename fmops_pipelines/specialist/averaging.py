"""Average several n-gram students into one that serves as fast as any of them.

In eval mode an n-gram student is linear in its features: logits = features @ (bag @ head.W^T) + head.b. So the
mean of several students' calibrated logits (each divided by its own temperature) is itself an n-gram student:
one table of n_features x n_classes (smaller than a 16-wide bag), an identity head, the mean bias. The specialist
step uses it to ship the chosen student averaged with the copies of it that the gold rows' cross-fitting trained
anyway (one per gold fold, gold_rows.py): on a few hundred gold rows a single student's test macro-F1 moves with
its seed and early-stopping fold, and rows that no training text touched keep each seed's random initial vectors;
the average keeps what the students agree on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from fmops_pipelines.specialist.ngram import NgramNet, NgramSpecialist


@dataclass
class LogitTable:
    """A running sum of students' calibrated logit tables (features x classes) and biases, and how many."""

    table: np.ndarray
    bias: np.ndarray
    count: int = 1

    @classmethod
    def of(cls, student: NgramSpecialist) -> LogitTable:
        state = student.net.state_dict()
        bag, weight, bias = (state[k].detach().float().cpu() for k in ("bag.weight", "head.weight", "head.bias"))
        t = float(student.cfg.temperature)
        return cls((bag @ weight.T).numpy() / t, bias.numpy() / t)

    def add(self, other: LogitTable) -> LogitTable:
        if other.table.shape != self.table.shape:
            raise ValueError(f"cannot average students with {other.table.shape} and {self.table.shape} logit tables")
        self.table += other.table
        self.bias += other.bias
        self.count += other.count
        return self


def averaged(student: NgramSpecialist, others: LogitTable) -> NgramSpecialist:
    """`student` averaged with `others` (a sum of its copies' tables): one network, temperature 1 (each member's
    own temperature is inside the table), `cfg.averaged` counting the members."""
    total = LogitTable.of(student).add(others)
    k = total.table.shape[1]
    cfg = replace(student.cfg, embed_dim=k, dropout=0.0, temperature=1.0,
                  averaged=student.cfg.averaged + others.count)
    with torch.device("meta"):  # the weights are set below: none are drawn
        net = NgramNet(total.table.shape[0], k, k, 0.0, draw=False)
    net.load_state_dict({"bag.weight": torch.from_numpy(total.table / total.count),
                         "head.weight": torch.eye(k), "head.bias": torch.from_numpy(total.bias / total.count)},
                        assign=True)
    return NgramSpecialist(cfg, net=net.to(student.device), device=student.device)
