"""The fast n-gram student: hashed word and character n-grams summed in a torch EmbeddingBag.

Hashing (hashing.py; models saved before it used scikit-learn's HashingVectorizer) needs no vocabulary fit, so the model is one config plus one
weight tensor, and featurising is cheap enough that inference runs orders of magnitude faster than
the foundation model it learned from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from fmops_pipelines.specialist.ngram_features import Featurizer
from fmops_pipelines.specialist.row_adam import RowAdam
from fmops_pipelines.specialist.student import CONFIG_FILE, Student, autocast, pick_device, write_config
from fmops_pipelines.specialist.training_loop import TrainConfig, TrainHistory, fingerprint, fit, noise_aware_loss
from fmops_pipelines.specialist.training_memo import memo_path

WEIGHTS_FILE = "weights.pt"
ROWS_FILE = "rows.npy"  # the hashed rows a compact table holds (absent: the whole table)
IDF_FILE = "idf.npy"  # with `idf`: the featuriser's weights of the rows the table holds (0 elsewhere)


@dataclass
class NgramConfig:
    labels: list[str]
    architecture: str = "ngram"
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] | None = None
    hash_bits: int = 20
    embed_dim: int = 16
    dropout: float = 0.2
    temperature: float = 1.0  # fitted on dev after training: soft-label students come out underconfident
    word_hashing: str = "token-murmur"  # "sklearn": HashingVectorizer, what models saved before it existed used
    char_hashing: str = "codepoint"  # "sklearn": HashingVectorizer's char_wb, what models saved before it existed used
    family_norm: str = "each"  # word and char n-grams normalised apart; "joint": models saved before it existed
    averaged: int = 1  # >1: the mean of this many students' logits, one table (averaging.py)
    idf: bool = False  # features weighted by inverse document frequency over the training texts (the convex fit's)


class NgramNet(nn.Module):
    def __init__(self, n_features: int, embed_dim: int, n_classes: int, dropout: float, draw: bool = True):
        """draw=False: the caller replaces the weights (a saved model on the meta device), so none are drawn: on meta,
        nn.init's reference kernels would import torch._dynamo (~0.8 s) to draw nothing."""
        super().__init__()
        # sparse grads: only seen rows update. `_weight` leaves the table undrawn (EmbeddingBag would fill its
        # 2**20+ rows with N(0, 1) only for us to redraw them): one draw, ~0.15 s less per student at 1 thread
        self.bag = nn.EmbeddingBag(n_features, embed_dim, mode="sum", sparse=True,
                                   _weight=torch.empty(n_features, embed_dim))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, n_classes)
        if draw:
            nn.init.normal_(self.bag.weight, std=0.05)

    def forward(self, indices: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.bag(indices, offsets, per_sample_weights=weights)))


def _bag_inputs(X: sp.csr_matrix, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(X.indices.astype(np.int64)).to(device),
            torch.from_numpy(X.indptr[:-1].astype(np.int64)).to(device),
            torch.from_numpy(X.data.astype(np.float32, copy=False)).to(device))  # training's is float32


def _net_logits(net: NgramNet, X: sp.csr_matrix, device: torch.device, batch_size: int = 4096) -> np.ndarray:
    """The net's logits for featurised rows, `batch_size` rows at a time (the caller sets eval mode)."""
    out = []
    for start in range(0, X.shape[0], batch_size):
        batch = X if X.shape[0] <= batch_size else X[start : start + batch_size]  # a slice copies
        with autocast(device):
            out.append(net(*_bag_inputs(batch, device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, net.head.out_features), dtype=np.float32)


# CompactTable.remap reads a lookup table over X's columns up to this many of them (32 MB), where X has at least one
# entry per REMAP_LOOKUP_COLUMNS_PER_ENTRY columns: below that (a few dozen texts) building the table (~0.5 ms over
# word and char n-grams' 2**21 columns) costs more than the binary search it saves (even at ~5,000 entries)
REMAP_LOOKUP_MAX_COLUMNS = 1 << 23
REMAP_LOOKUP_COLUMNS_PER_ENTRY = 256


WRITE_BLOCK_ROWS = 65_536  # rows of a whole table written at once (CompactTable.write_whole)


class CompactTable:
    """Which rows of the hashed n-gram table a model holds: the sorted feature indices its training texts (train
    and dev) touch, renumbered 0..n-1 in order.

    A training changes only the rows its texts touch, so it runs on a table of those rows (a few percent of the
    2**hash_bits per family), with SparseAdam's two moments just as small, and the model keeps only them: a
    feature no training text had weighs nothing (the whole table would have left it at its random initial
    value, noise in every prediction that meets it). Renumbering keeps the rows' order, so the batches' gradients
    coalesce in the same order and the trained rows are those the whole table would train, bit for bit.
    """

    def __init__(self, rows: np.ndarray):
        self.rows = np.asarray(rows, dtype=np.int64)

    @classmethod
    def touched_by(cls, *matrices: sp.csr_matrix) -> CompactTable:
        rows = np.unique(np.concatenate([X.indices for X in matrices])) if matrices else np.zeros(0, np.int64)
        return cls(rows if len(rows) else np.zeros(1, dtype=np.int64))  # an EmbeddingBag needs a row

    def remap(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """X over the compact rows (its dtype kept); columns outside `rows` are dropped. Past a few dozen texts each
        column's compact row is read from a lookup table over X's columns (a few MB, built per call): a binary search
        of the sorted rows per entry took ~12 ms a call on sms_spam's char n-grams, 2 s of a specialist step."""
        if X.shape[1] <= min(REMAP_LOOKUP_MAX_COLUMNS, X.nnz * REMAP_LOOKUP_COLUMNS_PER_ENTRY):
            lookup = np.full(X.shape[1], -1, dtype=np.int32)
            lookup[self.rows[self.rows < X.shape[1]]] = np.arange(len(self.rows), dtype=np.int32)
            pos = lookup[X.indices]
            held = pos >= 0
        else:
            pos = np.minimum(np.searchsorted(self.rows, X.indices), len(self.rows) - 1)
            held = self.rows[pos] == X.indices
        if held.all():
            indices, data, indptr = pos, X.data, X.indptr
        else:  # each row keeps its held entries: its new extent is the count of held entries before it
            indices, data = pos[held], X.data[held]
            indptr = np.concatenate([[0], np.cumsum(held)])[X.indptr]
        return sp.csr_matrix((data, indices.astype(np.int32), indptr), shape=(X.shape[0], len(self.rows)))

    def shrink(self, net: NgramNet) -> NgramNet:
        """A net over the compact rows holding `net`'s values of them, sharing its head."""
        with torch.device("meta"):
            small = NgramNet(len(self.rows), net.bag.embedding_dim, net.head.out_features, net.dropout.p, draw=False)
        small.bag.weight = nn.Parameter(net.bag.weight.detach()[torch.from_numpy(self.rows)].clone())
        small.head = net.head
        return small

    def write_whole(self, path: Path, compact: np.ndarray, n_features: int) -> None:
        """`whole(compact, n_features)` written to `path` as a .npy file a block of rows at a time: the serving
        bundle's table, never held whole (it was ~130 MB of the champion step's peak, the 67k-row run's peak)."""
        compact = np.ascontiguousarray(compact)
        shape = (n_features, *compact.shape[1:])
        header = {"descr": np.lib.format.dtype_to_descr(compact.dtype), "fortran_order": False, "shape": shape}
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            for start in range(0, n_features, WRITE_BLOCK_ROWS):
                stop = min(start + WRITE_BLOCK_ROWS, n_features)
                block = np.zeros((stop - start, *shape[1:]), dtype=compact.dtype)
                lo, hi = np.searchsorted(self.rows, [start, stop])  # the rows are sorted
                block[self.rows[lo:hi] - start] = compact[lo:hi]
                block.tofile(f)

    def whole(self, compact: np.ndarray, n_features: int) -> np.ndarray:
        """The compact rows' values placed in a table of all `n_features` rows, zero elsewhere (written whole up
        front, as a trained whole table was, so serving timed on it meets no first-touch page faults)."""
        out = torch.zeros((n_features, *compact.shape[1:]), dtype=torch.from_numpy(compact[:0]).dtype)
        return out.index_copy_(0, torch.from_numpy(self.rows), torch.from_numpy(np.ascontiguousarray(compact))).numpy()


class NgramSpecialist(Student):
    """Featurizer + network + label names (+ the rows its table holds): everything needed to predict, saved as a
    few small files."""

    architecture = "ngram"

    def __init__(self, cfg: NgramConfig, net: NgramNet | None = None, device: torch.device | None = None,
                 table: CompactTable | None = None, idf: np.ndarray | None = None):
        """`table`: the hashed rows `net`'s bag holds, in order (a training's CompactTable); None: all of them.
        `idf`: the featuriser's fitted weights (ngram_features.fit_idf), which `cfg.idf` requires."""
        if cfg.idf != (idf is not None):
            raise ValueError("an n-gram student's idf weights come with its config's `idf: true`, and only with it")
        self.cfg = cfg
        self.featurizer = Featurizer(cfg, idf)
        self.device = device or pick_device()
        self.table = table
        self.net = (net or NgramNet(self.featurizer.n_features, cfg.embed_dim, len(cfg.labels), cfg.dropout)).to(self.device)

    def features(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The texts' rows over the net's table (hashed features it does not hold dropped: they weigh nothing)."""
        X = self.featurizer.transform(list(texts), np.float32)
        return self.table.remap(X) if self.table is not None else X

    def _bag(self) -> np.ndarray:
        return self.net.bag.weight.detach().float().cpu().numpy()

    def bag_table(self) -> np.ndarray:
        """The bag as a table of all the featuriser's rows (zero where the model holds none): what serving reads."""
        bag = self._bag()
        return self.table.whole(bag, self.featurizer.n_features) if self.table is not None else bag

    def write_bag_table(self, path: Path) -> None:
        """bag_table() as a .npy file, written without holding it whole."""
        bag = self._bag()
        if self.table is None:
            np.save(path, bag)
        else:
            self.table.write_whole(path, bag, self.featurizer.n_features)

    @torch.inference_mode()
    def logits(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        self.net.eval()
        batch_size = batch_size or 4096
        out = [_net_logits(self.net, self.features(texts[start : start + batch_size]), self.device, batch_size)
               for start in range(0, len(texts), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.cfg.labels)), dtype=np.float32)

    def save(self, directory: Path) -> Path:
        write_config(directory, asdict(self.cfg))
        torch.save(self.net.state_dict(), directory / WEIGHTS_FILE)
        if self.table is not None:
            np.save(directory / ROWS_FILE, self.table.rows)
        if self.featurizer.idf is not None:  # the table's rows only: the training texts' ids are all it weighs
            idf = self.featurizer.idf
            np.save(directory / IDF_FILE, idf[self.table.rows] if self.table is not None else idf)
        return directory

    @classmethod
    def load(cls, directory: Path, device: torch.device | None = None) -> NgramSpecialist:
        raw = json.loads((Path(directory) / CONFIG_FILE).read_text())
        cfg = NgramConfig(**{"word_hashing": "sklearn", "char_hashing": "sklearn", "family_norm": "joint", **raw, "word_ngrams": tuple(raw["word_ngrams"]),
                             "char_ngrams": tuple(raw["char_ngrams"]) if raw["char_ngrams"] else None})
        device = device or pick_device()
        rows = Path(directory) / ROWS_FILE  # models saved before compact tables hold the whole table
        table = CompactTable(np.load(rows)) if rows.exists() else None
        n_rows = len(table.rows) if table is not None else Featurizer(cfg).n_features
        with torch.device("meta"):  # the saved weights replace the initial ones: none are drawn
            net = NgramNet(n_rows, cfg.embed_dim, len(cfg.labels), cfg.dropout, draw=False)
        net.load_state_dict(torch.load(Path(directory) / WEIGHTS_FILE, map_location=device), assign=True)
        idf = np.load(Path(directory) / IDF_FILE) if cfg.idf else None
        if idf is not None and table is not None:
            idf = table.whole(idf, Featurizer(cfg).n_features)
        return cls(cfg, net=net, device=device, table=table, idf=idf)


def train_ngram(cfg: NgramConfig, train_cfg: TrainConfig, texts: Sequence[str], soft_labels: np.ndarray,
                dev_texts: Sequence[str], y_dev: np.ndarray, on_epoch=None,
                checkpoint: Path | None = None, choose_threads: bool = True) -> tuple[NgramSpecialist, TrainHistory]:
    """Fit on probabilistic labels with the noise-aware loss; keep the best dev epoch; calibrate on dev. With a
    `checkpoint`, the finished training is memoised beside it (training_memo): the same training again is free.
    The net trains on, and the model keeps, a CompactTable of the rows its texts touch. `choose_threads`: each
    step on one CPU thread or all, whichever is faster now (thread_choice.py; the weights are the same either way)."""
    device = train_cfg.torch_device() or pick_device()
    featurizer = Featurizer(cfg)
    X, X_dev = featurizer.transform(list(texts), np.float32), featurizer.transform(list(dev_texts), np.float32)
    table = CompactTable.touched_by(X, X_dev)
    X, X_dev = table.remap(X), table.remap(X_dev)

    def initial_net() -> NgramNet:
        torch.manual_seed(train_cfg.seed)  # the whole table's draw: its rows start where a whole-table training's do
        return NgramNet(featurizer.n_features, cfg.embed_dim, len(cfg.labels), cfg.dropout)

    net = table.shrink(initial_net()).to(device)  # the whole table is dropped here
    targets = torch.from_numpy(soft_labels.astype(np.float32))

    def optimizers() -> list:
        # A dense optimiser would touch every embedding row every step; SparseAdam's update touches the seen ones
        return [RowAdam(list(net.bag.parameters()), lr=train_cfg.learning_rate),
                torch.optim.AdamW(net.head.parameters(), lr=train_cfg.learning_rate,
                                  weight_decay=train_cfg.weight_decay)]

    def batch_loss(idx: np.ndarray) -> torch.Tensor:
        with autocast(device):
            logits = net(*_bag_inputs(X[idx], device))
        return noise_aware_loss(logits, targets[idx].to(device), train_cfg.loss)

    def predict_dev() -> np.ndarray:
        with torch.inference_mode():
            return _net_logits(net, X_dev, device).argmax(axis=1)

    # the compact rows depend on the dev texts too: they are part of what a memo or checkpoint was trained on
    key = fingerprint([cfg, train_cfg], [*texts, "\x00dev", *dev_texts], soft_labels) if checkpoint else ""
    history = fit(net, optimizers, [], len(texts), batch_loss, predict_dev, y_dev, len(cfg.labels), train_cfg,
                  device, key, checkpoint, on_epoch, memo=memo_path(checkpoint) if checkpoint else None,
                  choose_threads=choose_threads)
    model = NgramSpecialist(cfg, net=net.eval(), device=device, table=table)
    model.calibrate(dev_texts, y_dev)
    return model, history
