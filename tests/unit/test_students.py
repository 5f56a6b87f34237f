"""The encoder student, the noise-aware losses and architecture selection on dev."""

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fmops_pipelines.spec import SpecialistSpec
from fmops_pipelines.specialist.encoder import EncoderConfig, EncoderSpecialist, train_encoder
from fmops_pipelines.specialist.loading import load_student
from fmops_pipelines.specialist.selection import (
    CANDIDATE_TIMING_S,
    RETIME_BAND,
    Candidate,
    light_fit_architectures,
    select,
    train_and_select,
)
from fmops_pipelines.specialist.self_training import SelfTrainingReport
from fmops_pipelines.specialist.student import measure_throughput
from fmops_pipelines.specialist.training_loop import TrainConfig, TrainHistory, noise_aware_loss
from tests.conftest import sms_student_data


@pytest.fixture(scope="module")
def sms(tmp_path_factory):
    return sms_student_data(tmp_path_factory.mktemp("assets"))


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A randomly initialised 2-layer BERT saved as a local Hugging Face folder (MiniLM's tokenizer)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from fmops_pipelines.fm.local_models import resolve_model_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=128)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(resolve_model_path("all-MiniLM-L6-v2"))).save_pretrained(folder)
    return str(folder)


def test_noise_aware_losses():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    one_hot = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    soft = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])
    nll = -torch.log_softmax(logits, dim=1)
    assert noise_aware_loss(logits, one_hot, "soft_ce") == pytest.approx(noise_aware_loss(logits, one_hot, "hard"))
    assert noise_aware_loss(logits, soft, "soft_ce").item() == pytest.approx((soft * nll).sum(1).mean().item())
    # confident rows count more: argmax targets weighted by the label model's confidence
    per_row = nll[[0, 1, 2], [0, 1, 0]]
    conf = torch.tensor([0.9, 0.6, 0.5])
    assert noise_aware_loss(logits, soft, "confidence_weighted").item() == pytest.approx(
        ((conf * per_row).sum() / conf.sum()).item())
    with pytest.raises(ValueError, match="unknown loss"):
        noise_aware_loss(logits, soft, "focal")


def test_fine_tuned_minilm_learns_sms_spam_from_soft_labels(sms, tmp_path):
    """The packaged MiniLM, fine-tuned for two short epochs on 160 rows: always-ham would score 0.87."""
    model, history = train_encoder(EncoderConfig(labels=sms["labels"], max_length=48),
                                   TrainConfig(epochs=2, batch_size=16, learning_rate=1e-4, warmup_ratio=0.1),
                                   sms["texts"][:160], sms["soft"][:160], sms["dev"], sms["y_dev"])
    assert [e["epoch"] for e in history.epochs] == [1, 2] and history.samples_per_s > 0
    probs = model.predict_proba(sms["test"])
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (probs.argmax(axis=1) == sms["y_test"]).mean() > 0.93
    loaded = load_student(model.save(tmp_path / "m"), device=torch.device("cpu"))
    assert isinstance(loaded, EncoderSpecialist) and loaded.cfg == model.cfg
    assert np.allclose(loaded.predict_proba(sms["test"][:20]), probs[:20], atol=1e-5)


class _Interrupted(Exception):
    pass


def test_encoder_from_a_local_folder_resumes_an_interrupted_training(sms, tiny_encoder, tmp_path, monkeypatch):
    monkeypatch.setenv("FMOPS_CHECKPOINT_EVERY_S", "0")  # a checkpoint after every epoch
    args = (EncoderConfig(labels=sms["labels"], model=tiny_encoder, max_length=32),
            TrainConfig(epochs=3, batch_size=16, learning_rate=1e-3, patience=3, warmup_ratio=0.2),
            sms["texts"][:96], sms["soft"][:96], sms["dev"][:40], sms["y_dev"][:40])
    reference, _ = train_encoder(*args)
    ckpt = tmp_path / "encoder.pt"

    def stop_after_two(row):
        if row["epoch"] == 2:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        train_encoder(*args, on_epoch=stop_after_two, checkpoint=ckpt)
    seen = []
    resumed, _ = train_encoder(*args, on_epoch=lambda r: seen.append(r["epoch"]), checkpoint=ckpt)
    assert seen == [3] and not ckpt.exists()
    assert np.allclose(resumed.predict_proba(sms["test"][:20]), reference.predict_proba(sms["test"][:20]), atol=1e-5)


def test_length_bucketed_batches_cover_every_row_once_and_pad_little(sms):
    """The encoder's batches: every row once per epoch, most tokens real rather than padding (MiniLM's
    tokenizer on sms_spam), a different grouping every epoch, and the same batches for the same seed."""
    from transformers import AutoTokenizer

    from fmops_pipelines.fm.local_models import resolve_model_path
    from fmops_pipelines.specialist.training_loop import bucket_window, epoch_batches

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path("all-MiniLM-L6-v2")))
    lengths = np.array([len(ids) for ids in tokenizer(sms["texts"], truncation=True, max_length=128)["input_ids"]])

    def real_share(batches):
        return lengths.sum() / sum(len(b) * lengths[b].max() for b in batches)

    rng = np.random.default_rng(0)
    first, second = epoch_batches(rng, len(lengths), 8, lengths), epoch_batches(rng, len(lengths), 8, lengths)
    for batches in (first, second):
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
        assert max(len(b) for b in batches) == 8
    assert real_share(first) > 0.85 and real_share(epoch_batches(rng, len(lengths), 8)) < 0.6
    assert [b.tolist() for b in first] != [b.tolist() for b in second]
    again = epoch_batches(np.random.default_rng(0), len(lengths), 8, lengths)
    assert [b.tolist() for b in again] == [b.tolist() for b in first]
    # a small set is cut into at least four windows, never sorted whole; a large one into windows of 50 batches
    assert bucket_window(160, 16) == 2 and bucket_window(40, 16) == 1 and bucket_window(100_000, 32) == 50


def _candidate(arch: str, f1: float, speed: float) -> Candidate:
    return Candidate(arch, None, TrainHistory(), SelfTrainingReport(0, 0, f1, False),
                     {"macro_f1": f1, "accuracy": f1}, speed)


def test_selection_takes_the_best_dev_score_among_fast_enough_models():
    ngram, encoder = _candidate("ngram", 0.85, 60_000), _candidate("encoder", 0.90, 60)
    assert select([ngram, encoder], "macro_f1", None).chosen is encoder
    picked = select([ngram, encoder], "macro_f1", 5_000)
    assert picked.chosen is ngram and picked.met_min_throughput and not encoder.eligible
    slow = select([ngram, encoder], "macro_f1", 100_000)  # none qualifies: the fastest, flagged for the gate
    assert slow.chosen is ngram and not slow.met_min_throughput
    tie = select([_candidate("encoder", 0.9, 60), fast := _candidate("ngram", 0.9, 60_000)], "macro_f1", None)
    assert tie.chosen is fast
    assert [r["chosen"] for r in picked.table()] == [True, False]


def test_candidates_of_one_architecture_are_as_fast_as_its_best_timing():
    """Two fits of one architecture serve at one speed: a busy host that slowed one timing below min_throughput
    does not make that fit ineligible while its twin, timed a moment later, passes."""
    own, light = _candidate("ngram_char", 0.95, 62_000), _candidate("ngram_char", 0.96, 37_000)
    light.fit = "light"
    word = _candidate("ngram", 0.90, 150_000)
    picked = select([word, own, light], "macro_f1", 50_000)
    assert own.eligible and light.eligible and picked.chosen is light
    assert light.row()["texts_per_s"] == 37_000  # the table reports what was timed
    assert not any(c.eligible for c in select([word, own, light], "macro_f1", 100_000).candidates[1:])


class _BusyAtFirst:
    """A scorer that a passing busy moment slows: 10 us of CPU a text (100k texts/s) until `busy_for` seconds of
    this process's CPU time have gone, then next to nothing (as a job beside the timing would, then end)."""

    architecture = "test_double"

    def __init__(self, busy_for: float):
        self.until = time.process_time() + busy_for

    def predict_proba(self, texts, batch_size=None):
        stop = time.process_time() + 1e-5 * len(texts)
        while time.process_time() < self.until and time.process_time() < stop:
            pass
        return np.full((len(texts), 2), 0.5)


def test_a_candidate_just_short_of_min_throughput_is_timed_again_and_keeps_its_best_timing():
    texts = [f"text {i}" for i in range(512)]
    busy = _candidate("test_double", 0.9, 0.0)
    busy.model = _BusyAtFirst(busy_for=0.6)
    busy.texts_per_s = measure_throughput(busy.model, texts, CANDIDATE_TIMING_S, cpu_time=True)
    floor = busy.texts_per_s * 1.5  # within RETIME_BAND of the first timing
    word = _candidate("ngram", 0.85, 10 * floor)
    assert select([word, busy], "macro_f1", floor).chosen is not busy  # without the texts to time it again
    picked = select([word, busy], "macro_f1", floor, timing_texts=texts)
    assert busy.texts_per_s >= floor and busy.eligible and picked.chosen is busy
    # far below the floor (more than RETIME_BAND short): not timed again
    slow = _candidate("test_double", 0.95, 0.0)
    slow.model = _BusyAtFirst(busy_for=60.0)
    slow.texts_per_s = measure_throughput(slow.model, texts, CANDIDATE_TIMING_S, cpu_time=True)
    before = slow.texts_per_s
    picked = select([word, slow], "macro_f1", before * (RETIME_BAND + 1), timing_texts=texts)
    assert slow.texts_per_s == before and not slow.eligible and picked.chosen is word


def test_train_and_select_trains_every_architecture_on_the_same_labels(sms, tiny_encoder, tmp_path):
    spec = SpecialistSpec(architectures=["ngram", "encoder"], min_throughput=1.0, self_training=False,
                          ngram={"epochs": 4, "learning_rate": 0.01, "batch_size": 32},
                          encoder={"model": tiny_encoder, "epochs": 1, "max_length": 32, "learning_rate": 1e-3})
    curves = []
    selection = train_and_select(spec, sms["labels"], sms["texts"][:96], sms["soft"][:96], [], sms["dev"][:40],
                                 sms["y_dev"][:40], tmp_path / "ckpt", on_epoch=lambda a, r: curves.append(a))
    assert [c.key for c in selection.candidates] == ["ngram", "encoder", "ngram+light"]  # light_fit: n-gram only
    ngram, _, light = selection.candidates
    assert curves == ["ngram"] * len(ngram.history.epochs) + ["encoder"] + ["ngram_light"] * len(light.history.epochs)
    best = max(selection.candidates, key=lambda c: round(c.dev["macro_f1"], 4))
    # the best on dev, or a faster architecture (or the same one's own fit) within dev's noise of it; each with its
    # interval beside it
    assert selection.chosen is best or (selection.chosen.noise["within_noise_of_best"] and (
        selection.chosen.texts_per_s > best.texts_per_s or selection.chosen.architecture == best.architecture))
    assert all("dev_interval_90" in row for row in selection.table())
    assert all(c.texts_per_s > 0 for c in selection.candidates)
    assert not list((tmp_path / "ckpt").glob("*.pt"))  # checkpoints are removed once training completes


def test_light_fit_trains_each_ngram_student_again_and_loses_ties(sms, tmp_path):
    """The second training takes light_fit's settings (here: no dropout, ten times the learning rate); the two run at
    one speed, so within dev's noise the section's own settings (listed first) are kept."""
    spec = SpecialistSpec(architectures=["ngram"], self_training=False, ngram={"epochs": 3, "batch_size": 32},
                          light_fit={"learning_rate": 0.01, "dropout": 0.0})
    selection = train_and_select(spec, sms["labels"], sms["texts"][:160], sms["soft"][:160], [], sms["dev"],
                                 sms["y_dev"], tmp_path / "ckpt")
    own, light = selection.candidates
    assert (own.key, light.key, own.fit, light.fit) == ("ngram", "ngram+light", "default", "light")
    assert (own.model.cfg.dropout, light.model.cfg.dropout) == (0.2, 0.0)
    assert not np.allclose(own.model.predict_proba(sms["dev"]), light.model.predict_proba(sms["dev"]))
    assert [r["fit"] for r in selection.table()] == ["default", "light"]
    # equal dev predictions: the section's own fit is the simpler, whichever was timed faster
    tie = [Candidate("ngram", own.model, own.history, own.self_training, own.dev, 1_000.0, dev_pred=own.dev_pred),
           Candidate("ngram", own.model, own.history, own.self_training, own.dev, 2_000.0, dev_pred=own.dev_pred,
                     fit="light")]
    assert select(tie, "macro_f1", None, sms["y_dev"]).chosen.fit == "default"
    none = train_and_select(spec.model_copy(update={"light_fit": None}), sms["labels"], sms["texts"][:160],
                            sms["soft"][:160], [], sms["dev"], sms["y_dev"])
    assert [c.key for c in none.candidates] == ["ngram"]
    already_light = spec.model_copy(update={"ngram": spec.ngram.model_copy(update={"learning_rate": 0.01, "dropout": 0.0})})
    assert light_fit_architectures(already_light) == [] and light_fit_architectures(spec) == ["ngram"]


def test_convex_fit_is_the_ngram_student_fitted_as_a_logistic_regression(sms, tmp_path):
    """The convex candidate is an n-gram student (one table column per class, identity head) whose logits are
    exactly scikit-learn's logistic regression on the same features; it serves, saves and loads as any other."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from fmops_pipelines.specialist.ngram_scorer import NgramScorer
    from fmops_pipelines.specialist.selection import convex_fit_architectures

    spec = SpecialistSpec(architectures=["ngram_char"], self_training=False, light_fit=None, convex_fit=True,
                          ngram_char={"epochs": 2, "batch_size": 64})
    texts, soft = sms["texts"][:300], sms["soft"][:300]
    selection = train_and_select(spec, sms["labels"], texts, soft, [], sms["dev"], sms["y_dev"], tmp_path / "ckpt")
    assert [c.key for c in selection.candidates] == ["ngram_char", "ngram_char+convex"]
    model = selection.candidates[1].model
    assert model.cfg.embed_dim == 2 and torch.equal(model.net.head.weight, torch.eye(2))
    assert model.cfg.idf and model.featurizer.idf is not None  # TF-IDF's features: weighted, one-text n-grams dropped
    X = model.featurizer.transform(texts)
    seen = np.unique(X.indices)
    reference = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced").fit(
        X[:, seen], soft.argmax(axis=1), sample_weight=soft.max(axis=1))
    test = model.featurizer.transform(sms["test"])[:, seen]
    logits = model.logits(sms["test"])
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], reference.decision_function(sp.csr_matrix(test)),
                               rtol=1e-4, atol=1e-4)
    assert f1_score(sms["y_test"], model.predict_proba(sms["test"]).argmax(axis=1), average="macro") > 0.85
    np.testing.assert_allclose(NgramScorer.from_student(model).predict_proba(sms["test"]),
                               model.predict_proba(sms["test"]), atol=1e-5)
    served = NgramScorer.load(NgramScorer.export(model, tmp_path / "bundle"))  # as batch inference loads it
    np.testing.assert_allclose(served.predict_proba(sms["test"]), model.predict_proba(sms["test"]), atol=1e-5)
    np.testing.assert_allclose(load_student(model.save(tmp_path / "saved")).predict_proba(sms["test"]),
                               model.predict_proba(sms["test"]), atol=1e-6)
    # labels of one class: a constant student, not an error
    one = train_and_select(spec.model_copy(update={"architectures": ["ngram"]}), sms["labels"], texts[:50],
                           np.tile([0.9, 0.1], (50, 1)), [], sms["dev"], sms["y_dev"])
    assert set(one.candidates[1].model.predict_proba(sms["test"]).argmax(axis=1)) == {0}
    assert convex_fit_architectures(spec.model_copy(update={"convex_fit": False})) == []
    lbfgs = spec.model_copy(update={"ngram_char": spec.ngram_char.model_copy(update={"solver": "lbfgs"})})
    assert convex_fit_architectures(lbfgs) == []  # its own fit is already the convex one
    assert light_fit_architectures(lbfgs.model_copy(update={"light_fit": SpecialistSpec().light_fit})) == []  # nothing for light_fit to change


def test_an_encoder_student_goes_through_the_registry_and_back(sms, tiny_encoder, tmp_path):
    """Logged as a models-from-code pyfunc with its tokenizer and pinned transformers; loaded by version;
    exported as a serving bundle that batch inference streams a file through (torch scorer)."""
    import mlflow
    import pandas as pd

    from fmops_pipelines.inference.bundle import load_bundle
    from fmops_pipelines.inference.engine import score_file
    from fmops_pipelines.inference.lineage import Lineage
    from fmops_pipelines.inference.scorers import Settings
    from fmops_pipelines.mlflow_store import experiment_id
    from fmops_pipelines.specialist.packaging import load_specialist, log_and_register
    from fmops_pipelines.tracking import MlflowTracking

    model, _ = train_encoder(EncoderConfig(labels=sms["labels"], model=tiny_encoder, max_length=32),
                             TrainConfig(epochs=1, batch_size=16, learning_rate=1e-3), sms["texts"][:48],
                             sms["soft"][:48], sms["dev"][:20], sms["y_dev"][:20])
    tracking = MlflowTracking()
    with tracking.active(), mlflow.start_run(experiment_id=experiment_id(tracking.uri, "encoder_registry_test")):
        registered = log_and_register(model, "encoder_registry_test", sms["texts"][:3], {"architecture": "encoder"})
    with tracking.active():
        requirements = mlflow.pyfunc.get_model_dependencies(registered["model_uri"], format="pip")
        loaded = load_specialist("encoder_registry_test", registered["version"])
    assert "transformers==" in Path(requirements).read_text()
    assert isinstance(loaded, EncoderSpecialist)
    assert np.allclose(loaded.predict_proba(sms["test"][:10]), model.predict_proba(sms["test"][:10]), atol=1e-5)

    bundle = load_bundle("encoder_registry_test", registered["version"])
    assert bundle.info["architecture"] == "encoder" and bundle.info["labels"] == sms["labels"]
    pd.DataFrame({"text": sms["test"][:10]}).to_csv(tmp_path / "in.csv", index=False)
    stats = score_file(bundle.scorer("cpu"), tmp_path / "in.csv", tmp_path / "out.parquet",
                       Lineage("m", registered["version"], "mv", "f", "p", "r"), Settings(batch_size=4))
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert stats.rows == 10 and np.allclose(out[["p_ham", "p_spam"]].to_numpy(),
                                            model.predict_proba(sms["test"][:10]), atol=1e-5)


def test_an_encoder_teacher_labels_every_train_row_and_the_fast_student_learns_its_labels(tiny_encoder, tmp_path,
                                                                                           monkeypatch):
    """specialist.teacher: encoder. The encoder learns the label model's labels on the covered rows, labels
    every train row (the uncovered ones too), and the n-gram learns exactly those labels; the n-gram taught
    by the label model stays a candidate beside it (the simpler, kept unless dev shows the distilled one
    better beyond noise), and the encoder candidate is the teacher itself, not a second encoder training."""
    import pandas as pd

    from fmops_pipelines.data.readers import load_dataset
    from fmops_pipelines.data.splits import label_indices, make_splits, part
    from fmops_pipelines.spec import load_spec
    from fmops_pipelines.specialist import distillation, selection
    from fmops_pipelines.supervision.label_models import FittedLabelModel, LabelModelCandidates
    from tests.conftest import small_sms_spec, write_task

    spec = load_spec(write_task(tmp_path, "sms_spam", small_sms_spec()))
    spec = spec.model_copy(update={"specialist": SpecialistSpec(
        teacher="encoder", architectures=["ngram", "encoder"],
        ngram={"epochs": 3, "learning_rate": 0.01, "batch_size": 32},
        encoder={"model": tiny_encoder, "epochs": 1, "max_length": 32, "learning_rate": 1e-3})})
    df = load_dataset(spec)
    splits = make_splits(df, spec.splits)
    train = part(splits, "train").merge(df[["id", "label"]].rename(columns={"label": "gold"}), on="id")
    soft = np.eye(2)[label_indices(train["gold"], spec.label_names)] * 0.8 + 0.1
    covered = np.random.default_rng(0).random(len(train)) < 0.7
    frame = pd.DataFrame({"id": train["id"], "covered": covered, "p_ham": soft[:, 0], "p_spam": soft[:, 1],
                          "label_model": "majority_vote"})
    candidates = LabelModelCandidates({"majority_vote": FittedLabelModel("majority_vote", 2, np.array([0.87, 0.13]))},
                                      {"majority_vote": 0.5})
    trainings = []
    real = selection.train_student
    monkeypatch.setattr(distillation, "train_student",
                        lambda *a, **kw: trainings.append((a[2], kw.get("name"))) or real(*a, **kw))
    curves = []
    out = distillation.distill(spec, candidates, frame, splits, on_epoch=lambda key, row: curves.append(key))

    assert out.encoder_teacher["rows_labelled"] == len(train) == len(out.texts)  # uncovered rows included
    assert out.encoder_teacher["architecture"] == "encoder" and 0 <= out.encoder_teacher["dev_macro_f1"] <= 1
    # no gold teacher's votes in a matrix: its students' dev scores read no gold
    assert not out.dev_reads_gold and not any(c.dev_reads_gold for c in out.selection.candidates)
    assert trainings == [("ngram", "ngram-distilled"), ("ngram", None)]  # encoder: trained once, as the teacher
    keys = [c.key for c in out.selection.candidates]
    assert keys == ["ngram", "ngram<-encoder", "encoder"]  # the spec's architectures, in its order
    assert [r["taught_by"] for r in out.selection.table()] == ["label_model", "encoder", "label_model"]
    assert {"encoder", "ngram_distilled", "ngram"} == set(curves)
    direct, distilled = out.selection.candidates[:2]
    dev = part(splits, "dev")
    # the distilled n-gram is exactly a fresh n-gram trained on the teacher's labels of every train row
    teacher = out.selection.candidates[2].model
    fresh = real(spec.specialist, spec.label_names, "ngram", out.texts, teacher.predict_proba(out.texts), [],
                 dev["text"].tolist(), label_indices(dev["label"], spec.label_names))
    texts = part(splits, "test")["text"].tolist()[:50]
    assert np.allclose(distilled.model.predict_proba(texts), fresh.model.predict_proba(texts), atol=1e-5)
    chosen = out.selection.chosen
    assert chosen.noise["within_noise_of_best"]
    if chosen.architecture == "ngram" and direct.noise["within_noise_of_best"]:
        assert chosen is direct  # the same speed: the distilled student ships only if dev shows it better
