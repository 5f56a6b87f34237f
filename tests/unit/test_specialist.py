import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from fmops_pipelines.data.splits import label_indices
from fmops_pipelines.specialist.loading import load_student
from fmops_pipelines.specialist.ngram import NgramConfig, NgramSpecialist, train_ngram
from fmops_pipelines.specialist.ngram_features import Featurizer, fit_idf
from fmops_pipelines.specialist.selection import trainer
from fmops_pipelines.specialist.student import measure_throughput
from fmops_pipelines.specialist.training_loop import TrainConfig, resumes_recorded
from tests.conftest import REPO, sms_student_data


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A student trained on soft labels derived from gold train labels, smoothed (labels the test never sees)."""
    d = sms_student_data(tmp_path_factory.mktemp("assets"))
    model, history = train_ngram(NgramConfig(labels=d["labels"]),
                                 TrainConfig(epochs=8, patience=8, learning_rate=0.01, batch_size=32),
                                 d["texts"], d["soft"], d["dev"], d["y_dev"])
    return model, history, d["test_frame"], d["spec"]


def test_training_learns_and_keeps_the_best_dev_epoch(trained):
    model, history, test, spec = trained
    assert 1 <= history.best_epoch <= len(history.epochs) <= 8
    assert history.best_dev_macro_f1 == max(e["dev_macro_f1"] for e in history.epochs)
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    pred = model.predict_proba(test["text"].tolist()).argmax(axis=1)
    y_test = label_indices(test["label"], spec.label_names)
    assert (pred == y_test).mean() > 0.93  # always-ham would score 0.87
    assert f1_score(y_test, pred) > 0.7
    assert history.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_probabilities_and_labels(trained):
    model, _, test, spec = trained
    probs = model.predict_proba(test["text"].tolist()[:50], batch_size=7)
    assert probs.shape == (50, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert set(model.predict(test["text"].tolist()[:50])) <= set(spec.label_names)
    assert measure_throughput(model, test["text"].tolist()) > 0


def test_save_and_load_round_trip(trained, tmp_path):
    model, _, test, _ = trained
    texts = test["text"].tolist()[:20]
    loaded = load_student(model.save(tmp_path / "m"), device=torch.device("cpu"))
    assert isinstance(loaded, NgramSpecialist) and loaded.cfg == model.cfg
    assert np.allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=1e-6)
    # a fresh process loads it without drawing initial weights, and so without importing torch._dynamo (~1 s)
    probe = ("import sys; from pathlib import Path; from fmops_pipelines.specialist.loading import load_student; "
             f"m = load_student(Path({str(tmp_path / 'm')!r})); m.predict_proba(['hi']); "
             "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr[-500:]


def test_the_student_trains_and_keeps_only_the_rows_its_texts_touch(trained, monkeypatch, tmp_path):
    """The student trains on a compact table of the rows its texts touch: those rows come out, bit for bit, as the
    same loop over the whole 2**20-row table trains them (what every student trained on before), and the model
    keeps only them: on any text it predicts what the whole table would with the untouched rows at zero."""
    from fmops_pipelines.specialist.ngram import NgramNet, _bag_inputs
    from fmops_pipelines.specialist.training_loop import fit, noise_aware_loss

    monkeypatch.setenv("FMOPS_TRAINING_MEMO", "0")
    _, _, test, spec = trained
    texts = test["text"].tolist()[:120]
    soft = np.random.default_rng(1).dirichlet([1, 1], size=len(texts))
    y = label_indices(test["label"], spec.label_names)[120:]
    dev = test["text"].tolist()[120:]
    cfg, train_cfg = NgramConfig(labels=spec.label_names, char_ngrams=(2, 4)), TrainConfig(epochs=3, patience=3, device="cpu")
    compact, history = train_ngram(cfg, train_cfg, texts, soft, dev, y)

    featurizer = Featurizer(cfg)
    torch.manual_seed(train_cfg.seed)
    whole = NgramNet(featurizer.n_features, cfg.embed_dim, 2, cfg.dropout)
    X, X_dev = featurizer.transform(texts), featurizer.transform(dev)
    targets = torch.from_numpy(soft.astype(np.float32))
    optimizers = [torch.optim.SparseAdam(list(whole.bag.parameters()), lr=train_cfg.learning_rate),
                  torch.optim.AdamW(whole.head.parameters(), lr=train_cfg.learning_rate, weight_decay=0.0)]
    cpu = torch.device("cpu")
    ref = fit(whole, optimizers, [], len(texts), lambda idx: noise_aware_loss(whole(*_bag_inputs(X[idx], cpu)),
                                                                              targets[idx], "soft_ce"),
              lambda: whole(*_bag_inputs(X_dev, cpu)).argmax(1).numpy(), y, 2, train_cfg, cpu)
    assert [e["train_loss"] for e in history.epochs] == [e["train_loss"] for e in ref.epochs]
    rows = np.union1d(X.indices, X_dev.indices)
    assert np.array_equal(compact.table.rows, rows) and len(rows) < 0.1 * featurizer.n_features
    state = compact.net.state_dict()
    assert torch.equal(state["bag.weight"].cpu(), whole.bag.weight.detach()[torch.from_numpy(rows)])
    for k in ("head.weight", "head.bias"):
        assert torch.equal(state[k].cpu(), whole.state_dict()[k]), k

    unseen = [*test["text"].tolist()[200:260], "zqxv kwpj fgbb", ""]  # n-grams no training text had
    assert not np.isin(featurizer.transform(unseen).indices, rows).all()
    with torch.no_grad():
        held = torch.zeros(featurizer.n_features, dtype=torch.bool)
        held[torch.from_numpy(rows)] = True
        whole.bag.weight[~held] = 0
        expected = whole.eval()(*_bag_inputs(featurizer.transform(unseen), cpu)).numpy()
    assert np.allclose(compact.logits(unseen), expected, atol=1e-6)
    loaded = NgramSpecialist.load(compact.save(tmp_path / "m"), device=cpu)
    assert np.array_equal(loaded.table.rows, rows) and np.allclose(loaded.logits(unseen), expected, atol=1e-6)
    assert (tmp_path / "m" / "weights.pt").stat().st_size < 0.1 * featurizer.n_features * cfg.embed_dim * 4


class _Interrupted(Exception):
    pass


def test_an_interrupted_training_resumes_to_the_same_model(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("FMOPS_CHECKPOINT_EVERY_S", "0")  # a checkpoint after every epoch
    monkeypatch.setenv("FMOPS_TRAINING_MEMO", "0")  # every call below trains (the memo has its own test)
    from fmops_pipelines.specialist import sparse_state

    # this slice's compact table has a few thousand rows: kept as its changed rows, as a large task's is
    monkeypatch.setattr(sparse_state, "ROWS_ABOVE", 1000)
    _, _, test, spec = trained
    rng = np.random.default_rng(0)
    texts = test["text"].tolist()
    soft = rng.dirichlet([1, 1], size=len(texts))
    y = label_indices(test["label"], spec.label_names)
    args = (NgramConfig(labels=spec.label_names), TrainConfig(epochs=5, patience=5, learning_rate=0.01))
    reference, ref_history = train_ngram(*args, texts, soft, texts[:60], y[:60])

    ckpt = tmp_path / "ckpt" / "specialist.pt"

    def stop_after_three(row):
        if row["epoch"] == 3:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        train_ngram(*args, texts, soft, texts[:60], y[:60], on_epoch=stop_after_three, checkpoint=ckpt)
    assert ckpt.exists() and ckpt.stat().st_size < 2**20 * 16 * 4 / 10  # the touched rows, not 512 MB of tensors
    seen = []
    with resumes_recorded() as resumes:  # what the specialist step reports, whichever student resumed
        resumed, history = train_ngram(*args, texts, soft, texts[:60], y[:60],
                                       on_epoch=lambda r: seen.append(r["epoch"]), checkpoint=ckpt)
    assert seen == [4, 5] and not ckpt.exists() and history.resumed_after_epoch == 3 and resumes == [3]
    assert [e["train_loss"] for e in history.epochs] == pytest.approx([e["train_loss"] for e in ref_history.epochs])
    assert np.allclose(resumed.predict_proba(texts[:30]), reference.predict_proba(texts[:30]), atol=1e-6)

    with pytest.raises(_Interrupted):  # a checkpoint left by other inputs is never resumed from
        train_ngram(*args, texts, soft, texts[:60], y[:60], on_epoch=stop_after_three, checkpoint=ckpt)
    seen.clear()
    train_ngram(*args, texts, soft[::-1].copy(), texts[:60], y[:60], on_epoch=lambda r: seen.append(r["epoch"]),
                checkpoint=ckpt)
    assert seen == [1, 2, 3, 4, 5] and not ckpt.exists()

    with pytest.raises(_Interrupted):  # nor one whose rows were taken against other initial weights
        train_ngram(*args, texts, soft, texts[:60], y[:60], on_epoch=stop_after_three, checkpoint=ckpt)
    state = torch.load(ckpt, weights_only=False)
    assert list(state["initial"]) == ["bag.weight"]
    state["initial"]["bag.weight"] = tuple(v + 1.0 for v in state["initial"]["bag.weight"])
    torch.save(state, ckpt)
    seen.clear()
    train_ngram(*args, texts, soft, texts[:60], y[:60], on_epoch=lambda r: seen.append(r["epoch"]), checkpoint=ckpt)
    assert seen == [1, 2, 3, 4, 5]


def test_sparse_state_puts_back_the_very_bits():
    """A sparse table's best epoch is kept as the rows training changed, against each row's value when a batch
    first touched it (no copy of the table), and put back bit for bit, -0.0 and NaN as they are, also where a
    later step touched rows the best epoch had not; optimiser moments are kept against zeros."""
    from fmops_pipelines.specialist import sparse_state

    net = torch.nn.Module()
    net.bag = torch.nn.EmbeddingBag(sparse_state.ROWS_ABOVE + 10, 4, mode="sum", sparse=True)
    net.head = torch.nn.Linear(4, 2)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    initial = sparse_state.InitialWeights(net)
    opt = torch.optim.SparseAdam(net.bag.parameters(), lr=0.1)

    def step(rows):
        opt.zero_grad()
        net.head(net.bag(torch.tensor(rows), torch.tensor([0]))).sum().backward()
        opt.step()

    step([3, 65_540])
    with torch.no_grad():
        net.bag.weight[3] = torch.tensor([-0.0, float("nan"), 1.0, 2.0])
        net.head.weight += 1
    best = {k: v.clone() for k, v in net.state_dict().items()}
    packed = initial.pack(net.state_dict())
    assert packed["bag.weight"].index.tolist() == [3, 65_540]
    step([7, 3])  # a row the best epoch never touched changes too
    assert not torch.equal(net.bag.weight[7], start["bag.weight"][7])
    initial.restore(net, packed)
    initial.close()
    assert all(torch.equal(net.state_dict()[k].view(torch.int32), best[k].view(torch.int32)) for k in best)
    fresh = torch.nn.Module()
    fresh.bag, fresh.head = torch.nn.EmbeddingBag(sparse_state.ROWS_ABOVE + 10, 4, sparse=True), torch.nn.Linear(4, 2)
    fresh.load_state_dict(start)
    sparse_state.load_into(fresh, packed)  # a resumed training or a memo: into a net still at its initial weights
    assert all(torch.equal(fresh.state_dict()[k].view(torch.int32), best[k].view(torch.int32)) for k in best)
    assert initial.drawn_alike(initial.reference_checksums(packed))
    assert not initial.drawn_alike({"bag.weight": sparse_state.checksums({"w": start["bag.weight"] + 1})["w"]})

    moments = torch.zeros(sparse_state.ROWS_ABOVE + 1, 3)
    moments[5, 1] = -0.0
    moments[9] = 1e-30
    state = {"state": {0: {"step": torch.tensor(4.0), "exp_avg": moments}}, "param_groups": [{"lr": 0.1}]}
    packed = sparse_state.pack_zeros(state)
    assert packed["state"][0]["exp_avg"].index.tolist() == [5, 9]
    back = sparse_state.unpack_zeros(packed)
    assert torch.equal(back["state"][0]["exp_avg"].view(torch.int32), moments.view(torch.int32))
    assert back["param_groups"] == [{"lr": 0.1}] and torch.equal(back["state"][0]["step"], torch.tensor(4.0))


def test_a_fast_training_is_not_slowed_by_checkpoints(trained, tmp_path, monkeypatch):
    """Under the default interval a training of a few seconds writes no checkpoint, so one killed in it
    starts over; with an interval of 0 the same training leaves one behind after every epoch."""
    monkeypatch.setenv("FMOPS_CHECKPOINT_EVERY_S", "30")
    monkeypatch.setenv("FMOPS_TRAINING_MEMO", "0")
    _, _, test, spec = trained
    texts, y = test["text"].tolist(), label_indices(test["label"], spec.label_names)
    soft = np.eye(2)[y]
    args = (NgramConfig(labels=spec.label_names), TrainConfig(epochs=3, patience=5))
    ckpt = tmp_path / "specialist.pt"
    written = []
    train_ngram(*args, texts, soft, texts[:60], y[:60], on_epoch=lambda r: written.append(ckpt.exists()),
                checkpoint=ckpt)
    assert written == [False, False, False]
    monkeypatch.setenv("FMOPS_CHECKPOINT_EVERY_S", "0")
    written.clear()
    train_ngram(*args, texts, soft, texts[:60], y[:60], on_epoch=lambda r: written.append(ckpt.exists()),
                checkpoint=ckpt)
    assert written == [True, True, True] and not ckpt.exists()


def test_a_finished_training_is_reused_not_run_again(trained, tmp_path, monkeypatch):
    """The same training (configs, texts, labels) a second time returns the first one's model and curve
    without training, also with another thread count; the memo holds only the embedding rows training changed;
    other labels, or FMOPS_TRAINING_MEMO=0, train again."""
    from fmops_pipelines.specialist import training_loop
    from fmops_pipelines.specialist.training_memo import memo_path

    monkeypatch.delenv("FMOPS_TRAINING_MEMO", raising=False)
    _, _, test, spec = trained
    texts, y = test["text"].tolist(), label_indices(test["label"], spec.label_names)
    soft = np.eye(2)[y] * 0.8 + 0.1

    def train(labels, **kwargs):  # a fresh config each time, as the trainer passes (calibration sets its temperature)
        return train_ngram(NgramConfig(labels=spec.label_names), TrainConfig(epochs=4, patience=4, learning_rate=0.01),
                           texts, labels, texts[:60], y[:60], checkpoint=ckpt, **kwargs)

    ckpt = tmp_path / "student-round1.pt"
    first, first_history = train(soft)
    memo = memo_path(ckpt)
    assert memo.exists() and not ckpt.exists() and not first_history.memoized
    assert memo.stat().st_size < 2**20 * 16 * 4 / 10  # a tenth of the embedding's 64 MB, at most

    trainings, featurized, optimisers = [], [], []
    real_fit = training_loop._fit
    monkeypatch.setattr(training_loop, "_fit", lambda *a: trainings.append(a[-1]) or real_fit(*a))
    real_transform, real_adam = Featurizer.transform, torch.optim.SparseAdam.__init__
    monkeypatch.setattr(Featurizer, "transform", lambda self, t, *a: featurized.append(len(t)) or real_transform(self, t, *a))
    monkeypatch.setattr(torch.optim.SparseAdam, "__init__", lambda self, *a, **k: optimisers.append(1) or real_adam(self, *a, **k))
    curve = []
    again, history = train(soft, on_epoch=curve.append)
    assert history.memoized and curve == first_history.epochs and history.best_epoch == first_history.best_epoch
    # a memoised training builds no optimisers and trains no epoch: it featurises its rows once, for the rows of its
    # compact table (~0.6 s at 65k rows), and scores dev, to calibrate
    assert not optimisers and featurized.count(len(texts)) == 1
    assert np.array_equal(again.predict_proba(texts), first.predict_proba(texts))
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)  # the initial weights' checksums summed in another order
    try:
        _, other_threads = train(soft)
    finally:
        torch.set_num_threads(threads)
    assert other_threads.memoized

    _, other = train(soft[::-1].copy())
    assert not other.memoized
    monkeypatch.setenv("FMOPS_TRAINING_MEMO", "0")
    _, off = train(soft)
    assert not off.memoized and trainings == [memo, memo, memo, None]


def test_self_training_pseudo_labels_confident_rows_and_lets_dev_decide(trained):
    from fmops_pipelines.specialist.self_training import self_train

    _, _, test, spec = trained
    texts = test["text"].tolist()
    y = label_indices(test["label"], spec.label_names)
    soft = np.eye(2)[y[:80]] * 0.8 + 0.1  # a small labelled part; the rest plays the unlabeled pool
    train = trainer("ngram", NgramConfig(labels=spec.label_names),
                    TrainConfig(epochs=4, patience=4, learning_rate=0.01), texts[80:140], y[80:140])
    model, history, report = self_train(train, texts[:80], soft, texts[140:], threshold=0.6)
    assert report.candidates == len(texts) - 140 and 0 < report.pseudo_labeled <= report.candidates
    if report.kept_second_round:  # the second student only replaces the first when dev says it is no worse
        assert history.best_dev_macro_f1 >= report.first_round_dev_macro_f1
    else:
        assert history.best_dev_macro_f1 == report.first_round_dev_macro_f1
    assert model.predict_proba(texts[:5]).shape == (5, 2)
    _, _, none = self_train(trainer("ngram", NgramConfig(labels=spec.label_names), TrainConfig(epochs=2),
                                    texts[:60], y[:60]), texts[:80], soft, [])
    assert none.pseudo_labeled == 0 and not none.kept_second_round


def test_word_ngram_hasher_counts_the_same_ngrams_as_scikit_learn(trained):
    from sklearn.feature_extraction.text import HashingVectorizer

    from fmops_pipelines.specialist.hashing import WordNgramHasher

    texts = [*trained[2]["text"].tolist()[:200], "", "a", "Free free FREE entry!"]
    ours = WordNgramHasher((1, 2), 2**20).transform(texts)
    ref = HashingVectorizer(n_features=2**20, ngram_range=(1, 2), alternate_sign=False, norm=None).transform(texts)
    assert np.array_equal(np.asarray(ours.sum(axis=1)).ravel(), np.asarray(ref.sum(axis=1)).ravel())
    assert sorted(ours[-1].data.tolist()) == [1.0, 1.0, 2.0, 3.0]  # free, free entry, "free free" x2, free x3
    again = WordNgramHasher((1, 2), 2**20).transform(texts)  # a fresh instance (another process) agrees
    assert (ours != again).nnz == 0
    ab, ba = WordNgramHasher((2, 2), 2**20).transform(["spam ham", "ham spam"])
    assert ab.indices.tolist() != ba.indices.tolist()


@pytest.mark.parametrize("char_range", [(2, 4), (4, 5)])
def test_char_ngram_hasher_counts_scikit_learn_s_char_wb_ngrams(trained, char_range):
    """The same n-grams as scikit-learn's char_wb analyzer on real texts (unicode, short words, extra
    whitespace, empty texts included), each hashed as the bulk path hashes it: the matrices are equal."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import HashingVectorizer

    from fmops_pipelines.specialist.hashing import CharNgramHasher, _char_poly, _mix

    n_features = 2**18
    texts = [*trained[2]["text"].tolist()[:200], "", "a", "  I  ", "Ça coûte 5€ !\tFREE\nentry", "x y"]
    ours = CharNgramHasher(char_range, n_features).transform(texts)
    analyzer = HashingVectorizer(analyzer="char_wb", ngram_range=char_range).build_analyzer()
    rows, cols = [], []
    for i, text in enumerate(texts):
        for gram in analyzer(text):
            code_points = np.frombuffer(gram.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
            rows.append(i)
            cols.append(int(_mix(np.array([_char_poly(code_points)], dtype=np.uint64), n_features)[0]))
    ref = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), n_features))
    assert ours.shape == ref.shape and (ours != ref).nnz == 0 and ours.sum() == len(rows) > 1000
    assert ours[-5].nnz == 0  # the empty text


EDGE_TEXTS = ["", "a", "  I  ", "Ça coûte 5€ !\tFREE\nentry", "x y", "😀 emoji ü", "İstanbul ǅ\u3000x\u2028y\x1cz",
              "\x85a b\xa0c", "snake_case ok_ 2x 𝒜𝒝 ideograph 𠀀𠀁"]


@pytest.mark.parametrize("word, char, norm, bits", [((1, 2), (2, 4), "each", 20), ((1, 2), (2, 4), "joint", 12),
                                                     ((1, 3), None, "each", 18), ((1, 2), (4, 5), "each", 16)])
def test_the_compiled_featuriser_computes_the_numpy_hashers_features(trained, word, char, norm, bits):
    """ngram_kernel finds the same tokens (unicode, underscores, astral-plane letters), char_wb words (every
    whitespace str.split() knows), hashes, counts and weights as the regex/numpy hashers it replaces."""
    texts = [*trained[2]["text"].tolist()[:300], *EDGE_TEXTS]
    cfg = {"labels": ["ham", "spam"], "hash_bits": bits, "word_ngrams": word, "char_ngrams": char,
           "word_hashing": "token-murmur", "char_hashing": "codepoint", "family_norm": norm}
    compiled, reference = Featurizer(cfg), Featurizer(cfg)
    reference.compiled = False
    assert compiled.compiled
    X, R = compiled.transform(texts), reference.transform(texts)
    assert X.shape == R.shape and np.array_equal(X.indptr, R.indptr) and abs(X - R).max() < 1e-12
    assert X[len(texts) - len(EDGE_TEXTS)].nnz == 0 and X.nnz > 10 * len(texts)  # the empty text, and real rows
    bag = np.random.default_rng(0).normal(size=(compiled.n_features, 4)).astype(np.float32)
    assert np.allclose(compiled.embed(texts, bag), R.astype(np.float32) @ bag, atol=1e-4)
    # weighted by IDF (the convex fit's features): the same weights, the same ids dropped
    idf, unweighted = fit_idf(cfg, texts[:200]), X.nnz
    compiled, reference = Featurizer(cfg, idf), Featurizer(cfg, idf)
    reference.compiled = False
    X, R = compiled.transform(texts), reference.transform(texts)
    assert X.shape == R.shape and np.array_equal(X.indptr, R.indptr) and abs(X - R).max() < 1e-12
    assert 0 < X.nnz < unweighted and (idf[X.indices] > 0).all()
    assert np.allclose(compiled.embed(texts, bag), R.astype(np.float32) @ bag, atol=1e-4)
    assert np.allclose(reference.embed(texts, bag), R.astype(np.float32) @ bag, atol=1e-4)


def test_idf_weights_are_scikit_learns_tfidf_over_the_hashed_ngrams(trained):
    """fit_idf gives each hashed n-gram TfidfVectorizer's smoothed idf over the distinct texts (a repeated text is
    one document) and drops the n-grams of fewer than two texts: its vocabulary is scikit-learn's with min_df=2."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from fmops_pipelines.specialist.hashing import WordNgramHasher

    texts = list(dict.fromkeys(trained[2]["text"].tolist()[:400]))  # distinct: scikit-learn counts repeats
    cfg = {"labels": ["ham", "spam"], "hash_bits": 20, "word_ngrams": (1, 2), "char_ngrams": None,
           "word_hashing": "token-murmur", "family_norm": "each"}
    idf = fit_idf(cfg, [*texts, *texts[:50]])  # the repeats change nothing
    assert np.array_equal(idf, fit_idf(cfg, texts))
    sk = TfidfVectorizer(ngram_range=(1, 2), min_df=2).fit(texts)
    ids = np.array([WordNgramHasher((len(t.split()), len(t.split())), 2**20).transform([t]).indices[0]
                    for t in sk.get_feature_names_out()])
    same = np.isclose(idf[ids], sk.idf_, rtol=1e-6)
    # where two n-grams share a hashed id (~1 % of them here), their id's texts are both's: a smaller weight
    assert len(ids) > 300 and same.mean() > 0.98 and (idf[ids][~same] < sk.idf_[~same]).all()
    # nothing else has a weight: the n-grams of one text are dropped (but where two of them share an id)
    assert len(set(ids)) <= np.count_nonzero(idf) <= 1.02 * len(ids)


def test_the_serving_scorer_gives_the_students_probabilities(trained):
    from fmops_pipelines.specialist.ngram_scorer import NgramScorer
    from fmops_pipelines.specialist.student import serving_scorer

    model, _, test, _ = trained
    texts = [*test["text"].tolist()[:200], *EDGE_TEXTS]
    scorer = serving_scorer(model)  # what the candidates' texts/s and the evaluation's specialist_texts_per_s time
    assert isinstance(scorer, NgramScorer) and "torch" not in type(scorer).__module__
    assert np.allclose(scorer.predict_proba(texts), model.predict_proba(texts), atol=1e-5)


def test_word_and_char_students_average_into_one_student_serving_their_mean_logits(trained, tmp_path):
    """A word student and a word+char one (another seed, its own temperature) averaged: one table of n_classes
    columns over the rows either holds, in the word+char space, whose logits are the mean of theirs as trained,
    saved, loaded and served like any student; students of other word features cannot join."""
    from dataclasses import replace

    from fmops_pipelines.specialist.averaging import average, joinable, logit_table
    from fmops_pipelines.specialist.student import serving_scorer

    word, _, test, _ = trained
    d = sms_student_data(tmp_path / "assets")
    char, _ = train_ngram(NgramConfig(labels=d["labels"], char_ngrams=(2, 4)),
                          TrainConfig(epochs=3, patience=3, learning_rate=0.01, batch_size=32, seed=7),
                          d["texts"], d["soft"], d["dev"], d["y_dev"])
    texts = [*test["text"].tolist()[:300], *EDGE_TEXTS]
    both = average([word, char])
    assert both.cfg.averaged == 2 and both.cfg.char_ngrams == (2, 4) and both.cfg.temperature == 1.0
    assert both.net.bag.weight.shape == (len(np.union1d(word.table.rows, char.table.rows)), 2)  # a column per class
    assert np.allclose(both.logits(texts), (word.logits(texts) + char.logits(texts)) / 2, atol=1e-4)
    loaded = load_student(both.save(tmp_path / "m"), device=torch.device("cpu"))
    assert loaded.cfg == both.cfg and np.allclose(loaded.predict_proba(texts), both.predict_proba(texts), atol=1e-6)
    assert np.allclose(serving_scorer(loaded).predict_proba(texts), both.predict_proba(texts), atol=1e-5)
    other_words = NgramSpecialist(replace(word.cfg, word_ngrams=(1, 1)), device=torch.device("cpu"))
    assert joinable([word, char, other_words]) == [word, char]
    with pytest.raises(ValueError, match="cannot be averaged"):
        logit_table(other_words, char.cfg)


def test_word_and_char_ngrams_are_normalised_apart(trained):
    """Each text's word block and char block weigh the same (norm 1/sqrt 2 each), as a FeatureUnion of two
    normalised vectorisers; normalised together (models saved before), the char n-grams take most of it."""
    from fmops_pipelines.specialist.ngram_features import Featurizer

    texts = [*trained[2]["text"].tolist()[:100], ""]
    cfg = NgramConfig(labels=["ham", "spam"], char_ngrams=(2, 4), hash_bits=12)
    n = 2**12

    def block_norms(X):
        X = X.toarray()
        return np.linalg.norm(X[:, :n], axis=1), np.linalg.norm(X[:, n:], axis=1)

    word, char = block_norms(Featurizer(cfg).transform(texts))
    assert np.allclose(word[:-1], 0.5**0.5) and np.allclose(char[:-1], 0.5**0.5) and word[-1] == char[-1] == 0
    word, char = block_norms(Featurizer({**cfg.__dict__, "family_norm": "joint"}).transform(texts))
    assert np.allclose(word[:-1] ** 2 + char[:-1] ** 2, 1) and np.median(word[:-1] ** 2) < 0.25


def test_a_model_saved_before_the_char_options_still_loads_with_its_features(tmp_path):
    """Models saved before the code-point hasher and the apart normalisation keep scikit-learn's char_wb
    features, normalised together, when loaded."""
    import json

    from fmops_pipelines.specialist.hashing import CharNgramHasher
    from fmops_pipelines.specialist.student import CONFIG_FILE

    model = NgramSpecialist(NgramConfig(labels=["ham", "spam"], char_ngrams=(2, 4), hash_bits=12))
    assert isinstance(model.featurizer.vectorizers[1], CharNgramHasher) and model.featurizer.per_family
    folder = model.save(tmp_path / "m")
    config = folder / CONFIG_FILE
    raw = json.loads(config.read_text())
    raw.pop("char_hashing"), raw.pop("family_norm")  # as written before the fields existed
    config.write_text(json.dumps(raw))
    old = NgramSpecialist.load(folder)
    assert old.cfg.char_hashing == "sklearn" and not isinstance(old.featurizer.vectorizers[1], CharNgramHasher)
    assert old.cfg.family_norm == "joint" and not old.featurizer.per_family


def test_the_specialist_ships_the_student_that_chose_its_teacher(tmp_path, monkeypatch):
    """Choosing the label model trains one n-gram student per candidate on exactly the rows the specialist
    would use; the chosen one's student is the specialist's n-gram candidate, not trained a second time,
    and it equals a fresh training on those rows."""
    import pandas as pd

    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.data.splits import make_splits, part
    from fmops_pipelines.spec import load_spec
    from fmops_pipelines.specialist import selection
    from fmops_pipelines.specialist.distillation import distill
    from fmops_pipelines.supervision.label_models import FittedLabelModel, LabelModelCandidates
    from tests.conftest import small_sms_spec, write_task

    spec = load_spec(write_task(tmp_path, "sms_spam", small_sms_spec()))
    spec = spec.model_copy(update={"specialist": spec.specialist.model_copy(update={  # gold rows: test_gold.py
        "gold_rows": False, "ngram": spec.specialist.ngram.model_copy(update={"epochs": 4})})})
    df = load_dataset(spec)
    splits = make_splits(df, spec.splits)
    train = part(splits, "train").merge(df[["id", "label"]].rename(columns={"label": "gold"}), on="id")
    y = label_indices(train["gold"], spec.label_names)
    noisy = np.where(np.random.default_rng(0).random(len(y)) < 0.45, 1 - y, y)  # a much worse teacher
    frames = []
    for kind, labels in (("majority_vote", y), ("snorkel", noisy)):
        soft = np.eye(2)[labels] * 0.8 + 0.1
        frames.append(pd.DataFrame({"id": train["id"], "covered": True, "p_ham": soft[:, 0], "p_spam": soft[:, 1],
                                    "label_model": kind}))
    balance = np.array([0.87, 0.13])
    candidates = LabelModelCandidates({kd: FittedLabelModel(kd, 2, balance) for kd in ("majority_vote", "snorkel")},
                                      {"majority_vote": 0.5, "snorkel": 0.6})
    trainings = []
    real = selection.train_student
    monkeypatch.setattr(selection, "train_student", lambda *a, **kw: trainings.append(kw.get("name")) or real(*a, **kw))
    out = distill(spec, candidates, pd.concat(frames, ignore_index=True), splits)
    assert out.teacher.kind == "majority_vote" and set(out.teacher_scores) == {"majority_vote", "snorkel"}
    assert out.teacher_scores["majority_vote"]["dev"] > out.teacher_scores["snorkel"]["dev"]
    assert not out.teacher_scores["snorkel"]["within_noise_of_best"]
    # the word n-gram candidate is not trained a third time; the trainings added are the ngram_char candidate's and
    # each architecture's light fit (specialist.light_fit)
    assert trainings == ["teacher-majority_vote", "teacher-snorkel", None, "ngram-light", "ngram_char-light"]
    word, *_, averaged = out.selection.candidates
    trained_keys = ["ngram", "ngram_char", "ngram+light", "ngram_char+light"]
    assert [c.key for c in out.selection.candidates] == [*trained_keys, "ngram_char+averaged"]
    # what ships (specialist.average): the four averaged into one student over the word+char features, scored on
    # dev and timed like the others
    assert out.selection.chosen is averaged and averaged.averaged_from == trained_keys
    assert averaged.model.cfg.averaged == 4 and averaged.model.cfg.char_ngrams and averaged.texts_per_s > 0
    assert averaged.dev_pred.shape == word.dev_pred.shape and averaged.row()["averaged_from"] == trained_keys
    # only the shipped candidate keeps its model (each holds a 2**20-row table); the others keep their scores
    assert [c.model is not None for c in out.selection.candidates] == [c is out.selection.chosen
                                                                       for c in out.selection.candidates]
    dev = part(splits, "dev")
    fresh = real(spec.specialist, spec.label_names, "ngram", out.texts, np.eye(2)[y] * 0.8 + 0.1,
                 [], dev["text"].tolist(), label_indices(dev["label"], spec.label_names))
    assert np.array_equal(word.dev_pred, fresh.model.predict_proba(dev["text"].tolist()).argmax(axis=1))
    assert word.history.epochs == fresh.history.epochs


def test_deterministic_mode_holds_while_training_and_is_restored(tmp_path, monkeypatch):
    """specialist.deterministic: torch's deterministic kernels (warn-only where it has none), no cuDNN
    autotuning and cuBLAS's fixed workspace during training only; two trainings give the same weights."""
    from fmops_pipelines.spec import SpecialistSpec
    from fmops_pipelines.specialist.selection import student_configs

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    spec = SpecialistSpec(deterministic=True, ngram={"epochs": 2, "learning_rate": 0.01, "batch_size": 32})
    data = sms_student_data(tmp_path)
    cfg, train_cfg = student_configs(spec, data["labels"], "ngram")
    assert train_cfg.deterministic
    seen = []

    def on_epoch(row):
        seen.append((torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
                     os.environ.get("CUBLAS_WORKSPACE_CONFIG")))

    runs = [trainer("ngram", cfg, train_cfg, data["dev"], data["y_dev"], on_epoch)(data["texts"], data["soft"])[0]
            for _ in range(2)]
    assert seen and all(s == (True, False, ":4096:8") for s in seen)
    assert not torch.are_deterministic_algorithms_enabled() and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert np.array_equal(runs[0].predict_proba(data["test"]), runs[1].predict_proba(data["test"]))


@pytest.mark.parametrize("anchor_labels, learned", [("gold", True), ("flipped", False)])
def test_dev_decides_whether_the_student_learns_the_rows_only_the_anchor_labelled(tmp_path, monkeypatch,
                                                                                 anchor_labels, learned):
    """Rows only the anchor voted on are learned when that makes the student better on dev (the anchor is
    right there) and left to self-training when it makes it worse (the anchor is wrong there); the way
    without them reuses the teacher choice's student, so one training is added, and the metadata shows
    both ways' dev scores."""
    import pandas as pd

    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.data.splits import make_splits, part
    from fmops_pipelines.spec import load_spec
    from fmops_pipelines.specialist import distillation, selection
    from fmops_pipelines.supervision.label_models import FittedLabelModel, LabelModelCandidates
    from tests.conftest import small_sms_spec, write_task

    spec = load_spec(write_task(tmp_path, "sms_spam", small_sms_spec()))
    spec = spec.model_copy(update={"specialist": spec.specialist.model_copy(update={  # gold rows: test_gold.py
        "self_training": False, "gold_rows": False, "ngram": spec.specialist.ngram.model_copy(update={"epochs": 6})})})
    df = load_dataset(spec)
    splits = make_splits(df, spec.splits)
    train = part(splits, "train").merge(df[["id", "label"]].rename(columns={"label": "gold"}), on="id")
    y = label_indices(train["gold"], spec.label_names)
    covered = np.random.default_rng(0).random(len(y)) < 0.25
    given = np.where(covered | (anchor_labels == "gold"), y, 1 - y)
    frames = []
    for kind in ("majority_vote", "snorkel"):
        soft = np.eye(2)[given] * 0.8 + 0.1
        frames.append(pd.DataFrame({"id": train["id"], "covered": covered, "voted": True, "p_ham": soft[:, 0],
                                    "p_spam": soft[:, 1], "label_model": kind}))
    candidates = LabelModelCandidates({kd: FittedLabelModel(kd, 2, np.array([0.87, 0.13]))
                                       for kd in ("majority_vote", "snorkel")}, {"majority_vote": 0.5, "snorkel": 0.5})
    trainings = []
    for module in (selection, distillation):
        real = selection.train_student if module is selection else distillation.train_student
        monkeypatch.setattr(module, "train_student",
                            lambda *a, _real=real, **kw: trainings.append(kw.get("name")) or _real(*a, **kw))
    out = distillation.distill(spec, candidates, pd.concat(frames, ignore_index=True), splits)
    assert trainings == ["teacher-majority_vote", "teacher-snorkel", "anchor-rows-learned", None,  # None: ngram_char
                         "ngram-light", "ngram_char-light"]
    rows = out.anchor_rows
    assert rows["anchor_rows"] == ("learned" if learned else "left_out")
    assert (rows["learned"]["dev"] > rows["left_out"]["dev"]) == learned
    assert len(out.texts) == (len(y) if learned else int(covered.sum()))


def _large_pool_distillation(tmp_path, monkeypatch, gold_rows: bool) -> dict:
    """sms_spam on a 1,400-row slice (~900 train rows) with specialist.trial_rows 500 (with gold rows: the word
    n-grams alone, no self-training, to keep the cross-fitting short). Returns the distilled result, splits,
    spec, the label model's soft labels per train row and each student training's (name, rows)."""
    import pandas as pd

    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.data.splits import make_splits, part
    from fmops_pipelines.spec import load_spec
    from fmops_pipelines.specialist import distillation, selection
    from fmops_pipelines.specialist import gold_rows as gold_rows_module
    from fmops_pipelines.supervision.label_models import FittedLabelModel, LabelModelCandidates
    from tests.conftest import small_sms_spec, write_task

    raw = small_sms_spec()
    raw["splits"] = {**raw["splits"], "max_rows": 1400, "dev_size": 150}
    spec = load_spec(write_task(tmp_path, "sms_spam", raw))
    spec = spec.model_copy(update={"specialist": spec.specialist.model_copy(update={
        "gold_rows": gold_rows, "trial_rows": 500, "light_fit": None, "self_training": not gold_rows,
        **({"architectures": ["ngram"]} if gold_rows else {}),
        "ngram": spec.specialist.ngram.model_copy(update={"epochs": 4}),
        "ngram_char": spec.specialist.ngram_char.model_copy(update={"epochs": 4})})})
    df = load_dataset(spec)
    splits = make_splits(df, spec.splits)
    train = part(splits, "train").merge(df[["id", "label"]].rename(columns={"label": "gold"}), on="id")
    soft = np.eye(2)[label_indices(train["gold"], spec.label_names)] * 0.8 + 0.1
    frame = pd.DataFrame({"id": train["id"], "covered": True, "p_ham": soft[:, 0], "p_spam": soft[:, 1],
                          "label_model": "majority_vote"})
    candidates = LabelModelCandidates({"majority_vote": FittedLabelModel("majority_vote", 2, np.array([0.87, 0.13]))},
                                      {"majority_vote": 0.5})
    trainings, keeps = [], {}  # keeps: each named training's self-training verdict, where it was given one
    for module in (selection, distillation):
        real = selection.train_student if module is selection else distillation.train_student
        monkeypatch.setattr(module, "train_student", lambda *a, _real=real, **kw: trainings.append(
            (kw.get("name"), len(a[3]))) or keeps.update({kw.get("name"): kw.get("keep")}) or _real(*a, **kw))
    real_trainer = gold_rows_module.trainer

    def recorded(arch, cfg, train_cfg, *a, **kw):
        fit = real_trainer(arch, cfg, train_cfg, *a, **kw)
        return lambda texts, soft_: trainings.append(("gold", len(texts), train_cfg.epochs)) or fit(texts, soft_)

    monkeypatch.setattr(gold_rows_module, "trainer", recorded)
    out = distillation.distill(spec, candidates, frame, splits)
    return {"out": out, "splits": splits, "spec": spec, "soft": dict(zip(train["text"], soft, strict=False)),
            "trainings": trainings, "keeps": keeps}


def test_a_pool_past_trial_rows_is_chosen_on_a_sample_and_the_chosen_refitted_on_all(tmp_path, monkeypatch):
    """Past specialist.trial_rows, every choice's training sees a 500-row sample; the chosen student alone is
    trained again on all ~900 rows, exactly as the step trains it without a sample, and it ships, the sample's
    beside it with its model released."""
    from fmops_pipelines.data.splits import part
    from fmops_pipelines.specialist.selection import train_student

    run = _large_pool_distillation(tmp_path, monkeypatch, gold_rows=False)
    out, splits, spec = run["out"], run["splits"], run["spec"]
    pool = int((splits["split"] == "train").sum())
    assert pool > 900
    *trials, refit = run["trainings"]
    assert all(rows == 500 for _, rows in trials)
    chosen = out.selection.chosen
    assert refit == (f"{chosen.key}-refit", pool)
    assert chosen.refit_rows == pool == len(out.texts) and chosen in out.selection.candidates
    sampled = next(c for c in out.selection.candidates if c.key == chosen.key and c is not chosen)
    assert not sampled.refit_rows and sampled.model is None
    # the sample's self-training verdict is the refit's, as its other choices are: dev does not decide it again
    assert run["keeps"][f"{chosen.key}-refit"] is sampled.self_training.kept_second_round
    assert out.sampled["pool_rows"] == pool and out.sampled["trial_rows"] == 500
    assert out.sampled["refit_train_rows"] == pool and out.sampled["refit_dev"] == round(chosen.dev["macro_f1"], 4)
    assert next(r for r in out.selection.table() if r["chosen"])["refit_rows"] == pool
    dev = part(splits, "dev")
    fresh = train_student(spec.specialist, spec.label_names, chosen.architecture, out.texts,
                          np.array([run["soft"][t] for t in out.texts]), [], dev["text"].tolist(),
                          label_indices(dev["label"], spec.label_names))
    texts = part(splits, "test")["text"].tolist()[:50]
    assert np.allclose(chosen.model.predict_proba(texts), fresh.model.predict_proba(texts), atol=1e-6)


def test_a_dev_score_that_read_gold_is_flagged_and_the_shipped_student_reports_its_out_of_fold_score():
    """Where the gold teacher votes in the label matrix, the label model's labels on the pool come from the teacher
    fitted on every gold row, so its students' dev scores read dev's labels through the pool's near-duplicates
    (youtube_spam: 0.976 on dev, 0.914 out of fold): they are flagged in the table, and the shipped one reports no
    dev figure of its own, only that one under its name and its recipe's out-of-fold score. A recipe with gold
    rows (its dev is out of fold) and the students of a matrix without the teacher read nothing."""
    from fmops_pipelines.specialist.distillation import flag_dev_read_gold, reported_dev
    from fmops_pipelines.specialist.selection import Candidate
    from fmops_pipelines.specialist.self_training import SelfTrainingReport
    from fmops_pipelines.specialist.training_loop import TrainHistory

    def candidate(taught_by: str, macro_f1: float) -> Candidate:
        return Candidate("ngram", None, TrainHistory(), SelfTrainingReport(0, 0, 0.0, False),
                         {"macro_f1": macro_f1, "accuracy": macro_f1 + 0.01}, 1.0, taught_by=taught_by)

    student, recipe = candidate("label_model", 0.976), candidate("gold_teacher+gold", 0.962)
    flag_dev_read_gold([student, recipe], read_gold=False)
    assert not student.dev_reads_gold and reported_dev(student) == {"dev_macro_f1": 0.976, "dev_accuracy": 0.986}
    flag_dev_read_gold([student, recipe], read_gold=True)
    assert student.dev_reads_gold and not recipe.dev_reads_gold
    assert [student.row()["dev_reads_gold"], recipe.row()["dev_reads_gold"]] == [True, False]
    assert reported_dev(student) == {"dev_macro_f1": None, "dev_accuracy": None, "out_of_fold": None,
                                     "dev_read_gold": {"macro_f1": 0.976, "accuracy": 0.986}}
    student.out_of_fold = {"macro_f1": 0.91428, "accuracy": 0.93}
    assert reported_dev(student)["out_of_fold"] == {"macro_f1": 0.9143, "accuracy": 0.93}
    assert student.row()["out_of_fold_macro_f1"] == 0.9143
    assert reported_dev(recipe) == {"dev_macro_f1": 0.962, "dev_accuracy": 0.972}


def test_a_gold_recipe_chosen_on_the_sample_is_refitted_on_the_whole_pool(tmp_path, monkeypatch):
    """When the gold rows' recipe wins on the sample, it is refitted on the whole pool with the gold rows repeated
    as for that pool, for the epoch count the sample's folds chose."""
    from fmops_pipelines.specialist import gold_rows

    monkeypatch.setattr(gold_rows, "pick", lambda scored, *a, **kw: max((x for x in scored if x[1].gold),
                                                                       key=lambda x: x[2]["macro_f1"]))
    run = _large_pool_distillation(tmp_path, monkeypatch, gold_rows=True)
    out, splits = run["out"], run["splits"]
    pool = int((splits["split"] == "train").sum())
    n_gold = int((splits["split"] == "dev").sum())
    chosen = out.selection.chosen
    assert chosen.taught_by == "label_model+gold" and chosen.refit_rows == pool
    epochs = out.gold_rows["refit"]["epochs"]
    sample_refit, whole_refit = [t for t in run["trainings"] if t[0] == "gold"][-2:]
    assert sample_refit == ("gold", 500 + gold_rows.repeats(500, n_gold) * n_gold, epochs)
    assert whole_refit == ("gold", pool + gold_rows.repeats(pool, n_gold) * n_gold, epochs)
    assert out.sampled["refit_gold_repeats"] == gold_rows.repeats(pool, n_gold) and "refit_dev" not in out.sampled
    # its temperature is the one fitted on the folds' out-of-fold logits pooled, not one of the fold students' own
    recipe = out.gold_rows["label_model+gold"]
    assert len(recipe["fold_temperatures"]) >= 3 and chosen.model.cfg.temperature == recipe["temperature"]


def test_a_compact_table_remaps_columns_alike_by_lookup_table_and_by_binary_search(tmp_path, monkeypatch):
    """CompactTable.remap over real SMS texts' word+char n-grams: the lookup-table path and the binary search it
    replaced give the same matrix, rows' held entries in order and the columns outside the table dropped."""
    from fmops_pipelines.specialist import ngram

    data = sms_student_data(tmp_path)
    featurizer = Featurizer(NgramConfig(labels=data["labels"], architecture="ngram_char", char_ngrams=(2, 4)))
    table = ngram.CompactTable.touched_by(featurizer.transform(data["texts"][:150]))
    X = featurizer.transform(data["texts"][:300])  # the table's texts, every row of it, and others beside them
    monkeypatch.setattr(ngram, "REMAP_LOOKUP_COLUMNS_PER_ENTRY", X.shape[1])  # else 300 texts take the search
    by_lookup = table.remap(X)
    monkeypatch.setattr(ngram, "REMAP_LOOKUP_MAX_COLUMNS", 0)
    by_search = table.remap(X)
    assert 0 < by_lookup.nnz < X.nnz and by_lookup.shape == (X.shape[0], len(table.rows))
    assert (by_lookup != by_search).nnz == 0 and np.array_equal(by_lookup.indptr, by_search.indptr)
    assert np.array_equal(by_lookup.indices, by_search.indices) and by_lookup.indices.dtype == np.int32
    kept = np.isin(X.indices, table.rows)
    assert np.array_equal(table.rows[by_lookup.indices], X.indices[kept])


def test_a_compact_table_is_written_whole_a_block_at_a_time(tmp_path, monkeypatch):
    """The serving bundle's bag table (all hashed rows, zero where the model holds none) is written a block of rows
    at a time: the file is the table `whole` builds, across block boundaries, and writing it never holds it whole
    (the whole table was ~130 MB of the champion step's peak at 67k rows)."""
    import tracemalloc

    from fmops_pipelines.specialist import ngram

    data = sms_student_data(tmp_path)
    featurizer = Featurizer(NgramConfig(labels=data["labels"], architecture="ngram_char", char_ngrams=(2, 4)))
    table = ngram.CompactTable.touched_by(featurizer.transform(data["texts"][:200]))
    compact = np.random.default_rng(0).normal(size=(len(table.rows), 8)).astype(np.float32)
    n = featurizer.n_features
    monkeypatch.setattr(ngram, "WRITE_BLOCK_ROWS", n // 7 + 3)  # blocks that end between the table's rows
    tracemalloc.start()
    try:
        table.write_whole(tmp_path / "bag.npy", compact, n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    written = np.load(tmp_path / "bag.npy", mmap_mode="r")
    assert written.shape == (n, 8) and written.dtype == np.float32
    assert np.array_equal(written, table.whole(compact, n))
    assert peak < 0.4 * written.nbytes
