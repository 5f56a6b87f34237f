"""Every gold label counts: all of it is gold unless capped, the gold teacher and the gold rows teach, and no
out-of-fold figure reads the labels of the rows it scores (on a real SMS slice)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from fmops_pipelines.data.readers import load_dataset
from fmops_pipelines.data.splits import gold_folds, label_indices, make_splits, part, require_pool
from fmops_pipelines.errors import DataError
from fmops_pipelines.spec import SplitSpec, load_spec
from tests.conftest import shipped_spec, small_sms_spec, write_task

LABELS = ["ham", "spam"]


@pytest.fixture(scope="module")
def sms(tmp_path_factory):
    return load_dataset(load_spec(write_task(tmp_path_factory.mktemp("assets"), "sms_spam", shipped_spec("sms_spam"))))


def test_every_labelled_row_outside_test_is_gold_unless_capped_and_a_cap_redraws_gold_but_not_test(sms):
    everything = make_splits(sms, SplitSpec(test_fraction=0.2, seed=0))
    assert (everything["split"] == "dev").sum() == everything["label"].notna().sum() - (everything["split"] == "test").sum()
    with pytest.raises(DataError, match="no unlabelled rows are left.*splits.dev_size"):  # SMS is all labelled
        require_pool(everything)
    capped = make_splits(sms, SplitSpec(dev_size=200, test_fraction=0.2, seed=0))
    redrawn = make_splits(sms, SplitSpec(dev_size=200, test_fraction=0.2, seed=0, gold_seed=7))
    require_pool(capped)
    test_ids = lambda s: set(s.loc[s["split"] == "test", "id"])
    gold_ids = lambda s: set(s.loc[s["split"] == "dev", "id"])
    assert test_ids(capped) == test_ids(redrawn) == test_ids(everything)
    assert gold_ids(capped) != gold_ids(redrawn) and 200 <= len(gold_ids(redrawn)) < 220  # duplicates come along
    assert capped.loc[capped["split"] == "train", "label"].isna().all()  # labels beyond the cap are removed


def test_gold_folds_are_stratified_and_say_when_gold_cannot_be_cross_fitted():
    y = np.array([0] * 40 + [1] * 10)
    folds = gold_folds(y, 2, seed=0)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4] and all((y[folds == f] == 1).sum() == 2 for f in range(5))
    assert (gold_folds(np.array([0] * 10 + [1] * 3), 2) >= 0).all()  # 3 folds where the rarer label has 3 rows
    assert (gold_folds(np.array([0] * 10 + [1]), 2) == -1).all()


@pytest.fixture(scope="module")
def gold_slice(tmp_path_factory):
    """A real SMS slice: ~60 gold rows, a few hundred unlabelled, and test (small_sms_spec's splits)."""
    spec = load_spec(write_task(tmp_path_factory.mktemp("assets"), "sms_spam", small_sms_spec()))
    return spec, make_splits(load_dataset(spec), spec.splits)


def _teach(splits: pd.DataFrame, y_gold: np.ndarray, folds: np.ndarray | None = None):
    from fmops_pipelines.supervision.gold_teacher import Features, teach

    folds = gold_folds(y_gold, 2, seed=0) if folds is None else folds
    features = Features.build(splits["text"].tolist(), (splits["split"] != "test").to_numpy(), None)
    return teach(features, splits[["id", "split"]], y_gold, folds, LABELS), folds


def _relabel_fold0(splits: pd.DataFrame):
    """(gold rows, their labels, the labels with gold fold 0's mostly flipped and shuffled, the folds, the teacher on
    the labels, the teacher on the relabelled ones): what an out-of-fold figure on fold 0 must not tell apart."""
    gold = part(splits, "dev")
    y = label_indices(gold["label"], LABELS)
    before, folds = _teach(splits, y)
    relabelled = y.copy()
    fold0 = folds == 0
    relabelled[fold0] = np.random.default_rng(1).permutation(1 - relabelled[fold0])
    after, _ = _teach(splits, relabelled, folds)  # the same folds: they are drawn from the labels
    return gold, y, relabelled, folds, before, after


def test_no_out_of_fold_score_reads_the_labels_of_the_rows_it_scores(gold_slice):
    """Relabel one gold fold at random: every out-of-fold figure on that fold (the gold teacher's probabilities,
    the pool labels of the teacher fitted without it, a student recipe's predictions) stays exactly the same,
    while what was fitted on that fold (the teacher fitted on all gold) changes."""
    from fmops_pipelines.specialist.gold_rows import CrossFit, gold_teacher_recipe
    from fmops_pipelines.specialist.selection import candidate_of, train_student
    from fmops_pipelines.supervision.gold_teacher import FULL, gold_oof, pool_labels

    spec, splits = gold_slice
    gold, y, relabelled, folds, before, after = _relabel_fold0(splits)
    fold0 = folds == 0

    oof_before, oof_after = gold_oof(before.labels), gold_oof(after.labels)
    assert (oof_before["fold"].to_numpy() == folds).all()  # each gold row scored by the teacher without its fold
    on_fold0 = oof_before["fold"] == 0
    pd.testing.assert_frame_equal(oof_before[on_fold0], oof_after[on_fold0])
    pd.testing.assert_frame_equal(pool_labels(before.labels, 0), pool_labels(after.labels, 0))
    assert not np.allclose(pool_labels(before.labels, FULL)["p_spam"], pool_labels(after.labels, FULL)["p_spam"])

    pool = part(splits, "train")[["id", "text"]]
    chosen = train_student(spec.specialist, LABELS, "ngram", pool["text"].tolist()[:50],
                           np.full((50, 2), 0.5, dtype=np.float32), [], gold["text"].tolist(), y)
    candidate = candidate_of(chosen, gold["text"].tolist(), y, gold["text"].tolist())
    runs = [CrossFit(spec.specialist, LABELS, candidate, gold["text"].tolist(), labels, folds).score(
        gold_teacher_recipe(t.labels, pool, LABELS)) for t, labels in ((before, y), (after, relabelled))]
    (first_scores, first), (_, second) = runs
    assert (first["oof"][fold0] == second["oof"][fold0]).all()  # fold 0 scored without its labels
    assert (first["oof"] >= 0).all() and not (first["oof"] == second["oof"]).all()  # the other folds read fold 0's
    majority = f1_score(y, np.full_like(y, np.bincount(y).argmax()), average="macro")  # what the prior alone scores
    assert first_scores["macro_f1"] > majority


def test_the_label_models_labels_reach_a_fold_only_through_the_teacher_fitted_without_it(gold_slice):
    """Where the gold teacher votes in the label matrix, the pool's label-model labels read the teacher fitted on all
    gold (on youtube_spam a student of them scored 0.961 out of fold, 0.927 on test). Per fold, the label model's
    recipe (and the both-teachers one) relabel the pool with the teacher fitted without that fold: relabelling gold
    fold 0 changes the final labels but neither fold 0's training rows nor its out-of-fold predictions."""
    from fmops_pipelines.specialist.distillation import fold_pools
    from fmops_pipelines.specialist.gold_rows import (
        CrossFit,
        both_teachers_recipe,
        gold_teacher_recipe,
        label_model_recipe,
    )
    from fmops_pipelines.specialist.selection import candidate_of, train_student
    from fmops_pipelines.specialist.training_data import training_rows
    from fmops_pipelines.supervision.label_matrix import votes, with_gold_teacher
    from fmops_pipelines.supervision.label_models import fit_candidates, training_labels
    from fmops_pipelines.votes import ABSTAIN

    spec, splits = gold_slice
    gold, y, relabelled, folds, before, after = _relabel_fold0(splits)
    fold0 = folds == 0
    rows = splits[["id", "split", "text"]].reset_index(drop=True)
    rule = np.where(rows["text"].str.contains(r"(?i)free|prize|claim|txt"), 1, ABSTAIN).astype(np.int8)
    pool = part(splits, "train")[["id", "text"]]
    runs = []
    for teacher, labels in ((before, y), (after, relabelled)):
        matrix = with_gold_teacher(rows[["id", "split"]].assign(rule=rule), teacher.labels, LABELS)
        if teacher is before:  # one label model for both (its temperature, fitted on gold, is the aside)
            dev_votes = votes(matrix.set_index("id").loc[gold["id"]].reset_index())
            model = fit_candidates("majority_vote", votes(matrix, "train"), dev_votes, labels, 2,
                                   np.array([0.85, 0.15])).models["majority_vote"]
        per_fold = fold_pools("sms", model, matrix, [], teacher.labels, splits, LABELS, None, False)
        final = training_rows("sms", training_labels(model, matrix, LABELS), splits, LABELS)
        own = label_model_recipe(*final, gold=False, per_fold=per_fold)
        both = both_teachers_recipe(own, gold_teacher_recipe(teacher.labels, pool, LABELS))
        runs.append((final, per_fold, own, both, labels))
    (final_a, fold_a, own_a, both_a, y_a), (final_b, fold_b, own_b, both_b, y_b) = runs
    assert not np.allclose(final_a[1], final_b[1])  # the final labels read every gold row
    assert np.array_equal(fold_a(0)[1], fold_b(0)[1]) and fold_a(0)[0] == fold_b(0)[0]  # fold 0's: none of its
    assert not np.allclose(fold_a(1)[1], fold_b(1)[1])  # fold 1's teacher learned fold 0
    assert own_a.pool(-1)[1] is final_a[1] and np.array_equal(both_a.pool(0)[1], both_b.pool(0)[1])
    assert fold_pools("sms", model, rows[["id", "split"]].assign(rule=rule), [], before.labels, splits, LABELS,
                      None, False) is None  # no teacher's column: the label model's labels read no gold

    chosen = train_student(spec.specialist, LABELS, "ngram", pool["text"].tolist()[:50],
                           np.full((50, 2), 0.5, dtype=np.float32), [], gold["text"].tolist(), y)
    candidate = candidate_of(chosen, gold["text"].tolist(), y, gold["text"].tolist())
    (_, first), (_, second) = [CrossFit(spec.specialist, LABELS, candidate, gold["text"].tolist(), labels,
                                        folds).score(recipe) for recipe, labels in ((own_a, y_a), (own_b, y_b))]
    assert (first["oof"][fold0] == second["oof"][fold0]).all() and (first["oof"] >= 0).all()


def test_gold_rows_a_review_queue_picked_train_every_fold_and_score_none(gold_slice):
    """Rows chosen for being hard are no sample of the task: a choice scored on them (sms_spam after two review
    rounds switched its teacher kind and lost 0.06) is biased. They get fold -1: every fold's teacher learns from
    them, no out-of-fold score, label or vote reads them."""
    from sklearn.metrics import f1_score

    from fmops_pipelines.supervision.gold_teacher import FULL, gold_oof, pool_labels
    from fmops_pipelines.supervision.label_matrix import GOLD_TEACHER, with_gold_teacher
    from fmops_pipelines.votes import ABSTAIN

    _, splits = gold_slice
    gold = part(splits, "dev")
    y = label_indices(gold["label"], LABELS)
    picked = np.zeros(len(y), dtype=bool)
    picked[np.flatnonzero(y == 0)[:6]] = picked[np.flatnonzero(y == 1)[:3]] = True
    folds = gold_folds(y, 2, seed=0, train_only=picked)
    assert (folds[picked] == FULL).all() and (folds[~picked] >= 0).all() and len(set(folds[~picked])) >= 2
    assert (gold_folds(y, 2, seed=0, train_only=np.zeros(len(y), dtype=bool)) == gold_folds(y, 2, seed=0)).all()

    teacher, _ = _teach(splits, y, folds)
    oof = gold_oof(teacher.labels)
    assert set(oof["id"]) == set(gold["id"][~picked])  # no out-of-fold label for a picked row
    scored = oof.set_index("id").loc[gold["id"][~picked], ["p_ham", "p_spam"]].to_numpy().argmax(1)
    assert teacher.out_of_fold_macro_f1 == pytest.approx(f1_score(y[~picked], scored, average="macro"))
    votes = with_gold_teacher(splits[["id", "split"]].reset_index(drop=True), teacher.labels, LABELS)
    assert (votes.set_index("id").loc[gold["id"][picked], GOLD_TEACHER] == ABSTAIN).all()

    flipped = y.copy()
    flipped[picked] = 1 - flipped[picked]
    relabelled, _ = _teach(splits, flipped, folds)  # what every fold's teacher learned changes with them
    assert not np.allclose(pool_labels(teacher.labels, 0)["p_spam"], pool_labels(relabelled.labels, 0)["p_spam"])


def test_the_gold_teacher_votes_in_the_label_matrix_out_of_fold_on_gold(gold_slice):
    """Its column: on a gold row, the vote of the teacher fitted without that row's fold (relabelling fold 0 leaves
    fold 0's votes as they were); elsewhere the teacher fitted on all gold; abstaining where it labelled nothing.
    It is an anchor (it votes everywhere), so `covered` still means a prompt or rule voted."""
    from fmops_pipelines.supervision.label_matrix import GOLD_TEACHER, anchor_columns, with_gold_teacher
    from fmops_pipelines.votes import ABSTAIN

    _, splits = gold_slice
    gold = part(splits, "dev")
    y = label_indices(gold["label"], LABELS)
    before, folds = _teach(splits, y)
    relabelled = y.copy()
    relabelled[folds == 0] = 1 - relabelled[folds == 0]
    after, _ = _teach(splits, relabelled, folds)
    matrix = splits[["id", "split"]].reset_index(drop=True).assign(p_prompt=np.int8(0))
    unlabelled = matrix.loc[matrix["split"] == "train", "id"].iloc[0]  # as if fm.budget kept it from the FM
    votes = {}
    for name, teacher in (("before", before), ("after", after)):
        labels = teacher.labels[teacher.labels["id"] != unlabelled]
        out = with_gold_teacher(matrix, labels, LABELS)
        assert list(out.columns) == [*matrix.columns, GOLD_TEACHER] and GOLD_TEACHER not in matrix
        votes[name] = out.set_index("id")[GOLD_TEACHER]
    oof = before.labels[before.labels["split"] == "dev"].set_index("id")[["p_ham", "p_spam"]].to_numpy().argmax(1)
    assert (votes["before"].loc[gold["id"]].to_numpy() == oof).all()
    fold0 = gold["id"].to_numpy()[folds == 0]
    assert (votes["before"].loc[fold0] == votes["after"].loc[fold0]).all()
    assert votes["before"].loc[unlabelled] == ABSTAIN
    full = before.labels[(before.labels["fold"] == -1) & (before.labels["id"] != unlabelled)].set_index("id")
    assert (votes["before"].loc[full.index].to_numpy() == full[["p_ham", "p_spam"]].to_numpy().argmax(1)).all()
    assert anchor_columns(out, ["p_anchor"]) == ["p_anchor", GOLD_TEACHER] and anchor_columns(matrix, []) == []
    assert with_gold_teacher(matrix, before.labels.iloc[:0], LABELS) is matrix  # no teacher: nothing to add


def test_the_gold_teacher_learns_from_gold_and_labels_every_row(gold_slice, minilm):
    from sklearn.metrics import f1_score

    from fmops_pipelines.supervision.gold_teacher import FULL, KINDS, pool_labels, teach_splits

    _, splits = gold_slice
    test = part(splits, "test")
    teacher = teach_splits(minilm, splits, LABELS)
    assert teacher.kind in KINDS and set(teacher.scores) == set(KINDS) - {"setfit"}  # each scored out of fold
    labels = teacher.labels
    assert set(labels.loc[labels["fold"] == FULL, "split"]) == {"train", "test"}
    assert len(pool_labels(labels)) == (splits["split"] == "train").sum()

    def test_f1(frame):
        rows = test[["id", "label"]].merge(frame[frame["split"] == "test"], on="id")
        return f1_score(label_indices(rows["label"], LABELS), rows[["p_ham", "p_spam"]].to_numpy().argmax(axis=1),
                        average="macro")

    shuffled = splits.copy()
    gold = shuffled["split"] == "dev"
    shuffled.loc[gold, "label"] = np.random.default_rng(0).permutation(shuffled.loc[gold, "label"].to_numpy())
    assert test_f1(labels) > 0.8 > test_f1(teach_splits(minilm, shuffled, LABELS).labels) + 0.1  # gold taught it
    chosen = teacher.choice[teacher.kind]
    assert chosen["within_noise_of_best"] and set(teacher.choice) == set(teacher.scores)


def test_the_gold_teacher_keeps_the_richest_kind_unless_another_leads_beyond_noise(gold_slice, minilm):
    from fmops_pipelines.supervision.gold_teacher import EMBEDDINGS, TFIDF, WITH_TOKENS, choose_kind, teach_splits

    _, splits = gold_slice
    y = label_indices(splits.loc[splits["split"] == "dev", "label"], LABELS)
    folds = gold_folds(y, 2, seed=0)
    oof = teach_splits(minilm, splits, LABELS).oof
    right = np.eye(2)[y]
    wrong = np.flatnonzero(oof[WITH_TOKENS].argmax(axis=1) != y)
    ahead = right.copy()  # the embeddings a row or two ahead of the joined kind: noise on ~60 rows
    ahead[wrong[2:]] = 1 - ahead[wrong[2:]]
    assert choose_kind(y, {**oof, EMBEDDINGS: ahead}, folds)[0] == WITH_TOKENS
    far = oof[WITH_TOKENS].copy()  # the joined kind wrong on a third of the rows: beyond noise
    far[::3] = 1 - right[::3]
    kind, noise = choose_kind(y, {WITH_TOKENS: far, EMBEDDINGS: right, TFIDF: right}, folds)
    assert kind == EMBEDDINGS and not noise[WITH_TOKENS]["within_noise_of_best"]  # the preferred order decides ties


def test_the_contrastive_teacher_fine_tunes_the_encoder_on_gold_out_of_fold(gold_slice):
    """SetFit as a gold-teacher candidate, on a tiny slice with one iteration (minutes per fit on CPU at the
    default; the default turns it on on a GPU only)."""
    pytest.importorskip("setfit", reason="the setfit extra is not installed")
    from fmops_pipelines.fm.local_models import resolve_model_path
    from fmops_pipelines.supervision.gold_teacher import FULL, SETFIT, Contrastive, Features, contrastive_encoder, teach

    spec, splits = gold_slice
    assert contrastive_encoder(spec, "cpu")[0] is None  # auto: not on a CPU
    on = spec.model_copy(update={"gold_teacher": spec.gold_teacher.model_copy(update={"contrastive": "on"})})
    assert contrastive_encoder(on, "cpu")[0] == str(resolve_model_path("all-MiniLM-L6-v2"))
    rows = pd.concat([part(splits, "dev").groupby("label").head(12), part(splits, "train").head(30),
                      part(splits, "test").head(30)], ignore_index=True)
    y = label_indices(rows.loc[rows["split"] == "dev", "label"], LABELS)
    folds = gold_folds(y, 2, seed=0, folds=3)
    texts = rows["text"].tolist()
    features = Features.build(texts, (rows["split"] != "test").to_numpy(), None,
                              Contrastive(str(resolve_model_path("all-MiniLM-L6-v2")), 1, 0, texts))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        teacher = teach(features, rows[["id", "split"]], y, folds, LABELS)
    assert not [w for w in caught if "pin_memory" in str(w.message)]  # nothing to pin on a CPU: not said per fit
    assert set(teacher.scores) == {"tfidf_logreg", SETFIT} and 0.0 <= teacher.scores[SETFIT] <= 1.0
    p_spam = teacher.oof[SETFIT][:, 1]
    assert p_spam[y == 1].mean() > p_spam[y == 0].mean() + 0.05  # out of fold, it leans the right way
    assert teacher.seconds_by_kind[SETFIT] > teacher.seconds_by_kind["tfidf_logreg"]
    chosen = teacher.labels
    assert len(chosen[(chosen["split"] == "train") & (chosen["fold"] == FULL)]) == 30
    assert np.allclose(chosen[["p_ham", "p_spam"]].sum(axis=1), 1.0)


def test_a_recipe_with_gold_ships_only_when_clearly_better_than_the_students_own_out_of_fold():
    from fmops_pipelines.specialist.gold_rows import Recipe, pick

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    noisy = lambda accuracy: np.where(rng.random(300) < accuracy, y, 1 - y)
    own = ("ngram", Recipe("label_model", lambda f: ([], np.zeros((0, 2)), []), gold=False), {"macro_f1": 0.7},
           {"oof": noisy(0.7)})
    recipe = Recipe("both_teachers+gold", lambda f: ([], np.zeros((0, 2)), []))
    clearly = ("ngram", recipe, {"macro_f1": 0.95}, {"oof": noisy(0.95)})
    barely = ("ngram", recipe, {"macro_f1": 0.71}, {"oof": np.where(np.arange(300) < 3, y, own[3]["oof"])})
    rows = np.ones(300, dtype=bool)
    assert pick([own, clearly], y, rows, 2, "macro_f1") is clearly
    assert pick([own, barely], y, rows, 2, "macro_f1") is None  # three rows better: noise
    assert pick([own], y, rows, 2, "macro_f1") is None and pick([barely], y, rows, 2, "macro_f1") is barely


def test_the_gold_teachers_convex_student_ships_within_noise_of_the_best_and_not_beyond():
    from fmops_pipelines.specialist.gold_rows import Recipe, pick

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    noisy = lambda accuracy: np.where(rng.random(300) < accuracy, y, 1 - y)
    empty = lambda f: ([], np.zeros((0, 2)), [])
    own = ("ngram", Recipe("label_model", empty, gold=False), {"macro_f1": 0.9}, {"oof": noisy(0.9)})
    network = ("averaged", Recipe("both_teachers+gold", empty), {"macro_f1": 0.91}, {"oof": noisy(0.91)})
    close = network[3]["oof"].copy()  # 20 rows worse than the network, 16 better: 4 rows down, within noise
    right, wrong = np.flatnonzero(close == y), np.flatnonzero(close != y)
    close[right[:20]], close[wrong[:16]] = 1 - y[right[:20]], y[wrong[:16]]
    convex = ("ngram_char+convex", Recipe("gold_teacher+gold", empty, fit="convex"), {"macro_f1": 0.9}, {"oof": close})
    far = ("ngram_char+convex", Recipe("gold_teacher+gold", empty, fit="convex"), {"macro_f1": 0.6},
           {"oof": noisy(0.6)})
    clearly = ("averaged", Recipe("both_teachers+gold", empty), {"macro_f1": 0.99}, {"oof": noisy(0.99)})
    rows = np.ones(300, dtype=bool)
    assert pick([own, network, convex], y, rows, 2, "macro_f1") is convex  # within noise of the best: it ships
    assert pick([own, network, far], y, rows, 2, "macro_f1") is None  # far below: the network's rule, own stays
    assert pick([own, clearly, far], y, rows, 2, "macro_f1") is clearly


def test_a_recipe_with_gold_contends_and_ships_as_the_average_of_the_architectures_that_scored_it(gold_slice,
                                                                                                 monkeypatch):
    """With specialist.average, the best recipe with gold is scored on the word and the word+char students; their
    average contends against the students' own recipe (its out-of-fold logits the mean of theirs, which is what the
    average of each fold's students predicts) and ships as one averaged student with one pooled temperature."""
    from fmops_pipelines.specialist import gold_rows
    from fmops_pipelines.specialist.gold_rows import AVERAGED, label_model_recipe, teach_with_gold
    from fmops_pipelines.specialist.selection import candidate_of, train_student

    spec, splits = gold_slice
    s = spec.specialist.model_copy(update={"self_training": False})
    gold, pool = part(splits, "dev"), part(splits, "train")["text"].tolist()[:120]
    y, gold_texts = label_indices(gold["label"], LABELS), gold["text"].tolist()
    spam = np.array([any(w in t.lower() for w in ("free", "txt", "call", "claim", "prize", "win")) for t in pool])
    targets = np.where(spam[:, None], [0.2, 0.8], [0.8, 0.2]).astype(np.float32)  # a keyword rule's labels
    word, char = (candidate_of(train_student(s, LABELS, arch, pool, targets, [], gold_texts, y), gold_texts, y,
                               gold_texts) for arch in ("ngram", "ngram_char"))
    seen = {}  # what pick is offered; it ships the contender with gold rows whatever the noise says
    monkeypatch.setattr(gold_rows, "pick", lambda contenders, *a, **kw: seen.update(contenders=contenders) or next(
        x for x in contenders if x[1].gold))
    folds = gold_folds(y, 2, seed=0)
    result = teach_with_gold(s, LABELS, word, [label_model_recipe(pool, targets, [], gold=False),
                                               label_model_recipe(pool, targets, [])],
                             gold_texts, y, folds, pool, others=[char], average=True)
    # the contenders: the students' own recipe and the average; not its members, whose ranking is dev's noise
    assert [(key, r.gold) for key, r, _, _ in seen["contenders"]] == [("ngram", False), (AVERAGED, True)]
    # the chosen student keeps its own recipe's out-of-fold score: what is reported where its dev score read gold
    assert round(word.out_of_fold["macro_f1"], 4) == result.summary["out_of_fold_dev"]["label_model"]
    _, _, dev, how = seen["contenders"][1]
    members = list(how["members"].values())
    assert list(how["members"]) == ["ngram", "ngram_char"]
    mean = (members[0]["oof_logits"] + members[1]["oof_logits"]) / 2
    assert (how["oof"][folds != -1] == mean.argmax(axis=1)[folds != -1]).all()
    shipped = result.chosen
    assert shipped.fit == "averaged" and shipped.taught_by == "label_model+gold"
    assert shipped.averaged_from == ["ngram<-label_model+gold", "ngram_char<-label_model+gold"]
    assert shipped.model.cfg.averaged == 2 and shipped.model.cfg.char_ngrams
    assert shipped.model.cfg.temperature == how["temperature"] and shipped.dev == dev
    assert result.summary["shipped"] == "label_model+gold (ngram_char, averaged)"
    assert result.summary["out_of_fold_dev"]["label_model+gold (averaged)"] == round(dev["macro_f1"], 4)
    assert dev["macro_f1"] > 0.6  # what the gold rows taught, out of fold


def test_the_gold_teachers_labels_teach_a_convex_student_that_contends_beside_the_average(gold_slice, monkeypatch):
    """A recipe with its own fit (the gold teacher's labels, fitted as a logistic regression) is scored out of fold
    on the word+char architecture in that fit, contends beside the networks' average, and ships as a convex
    n-gram student (one table column per class, identity head) refitted on all gold."""
    from fmops_pipelines.specialist import gold_rows
    from fmops_pipelines.specialist.gold_rows import AVERAGED, GOLD_TEACHER, Recipe, label_model_recipe, teach_with_gold
    from fmops_pipelines.specialist.selection import CONVEX, candidate_of, train_student

    spec, splits = gold_slice
    s = spec.specialist.model_copy(update={"self_training": False})
    gold, pool = part(splits, "dev"), part(splits, "train")["text"].tolist()[:120]
    y, gold_texts = label_indices(gold["label"], LABELS), gold["text"].tolist()
    spam = np.array([any(w in t.lower() for w in ("free", "txt", "call", "claim", "prize", "win")) for t in pool])
    targets = np.where(spam[:, None], [0.2, 0.8], [0.8, 0.2]).astype(np.float32)
    word, char = (candidate_of(train_student(s, LABELS, arch, pool, targets, [], gold_texts, y), gold_texts, y,
                               gold_texts) for arch in ("ngram", "ngram_char"))
    teacher = Recipe(GOLD_TEACHER, lambda f: (pool, np.eye(2, dtype=np.float32)[spam.astype(int)], []), fit=CONVEX)
    seen = {}
    monkeypatch.setattr(gold_rows, "pick", lambda contenders, *a, **kw: seen.update(contenders=contenders) or next(
        x for x in contenders if x[1].fit))
    folds = gold_folds(y, 2, seed=0)
    result = teach_with_gold(s, LABELS, word, [label_model_recipe(pool, targets, [], gold=False),
                                               label_model_recipe(pool, targets, []), teacher],
                             gold_texts, y, folds, pool, others=[char], average=True)
    assert [(key, r.gold) for key, r, _, _ in seen["contenders"]] == [
        ("ngram", False), (AVERAGED, True), ("ngram_char+convex", True)]
    shipped = result.chosen
    assert (shipped.architecture, shipped.fit, shipped.taught_by) == ("ngram_char", CONVEX, GOLD_TEACHER)
    assert shipped.model.cfg.embed_dim == 2 and shipped.model.cfg.char_ngrams  # a logistic regression's table
    _, _, dev, how = seen["contenders"][2]
    assert shipped.dev == dev and shipped.model.cfg.temperature == how["temperature"]
    assert result.summary["out_of_fold_dev"][f"{GOLD_TEACHER} (ngram_char+convex)"] == round(dev["macro_f1"], 4)
    assert result.summary["shipped"] == f"{GOLD_TEACHER} (ngram_char+convex)" and shipped.model.cfg.idf
    assert dev["macro_f1"] > 0.6
    weights = result.summary[f"{GOLD_TEACHER} (ngram_char+convex): gold repeats"]  # both weights scored out of fold
    assert round(dev["macro_f1"], 4) == weights[weights["chosen"]] == max(weights["rule"], weights["10"])
    assert how["gold_repeats"] == (None if weights["chosen"] == "rule" else 10)
    assert result.summary["refit"]["gold_repeats"] == (how["gold_repeats"] or gold_rows.repeats(len(pool), len(y)))


def test_the_convex_students_gold_weight_is_the_better_out_of_fold_and_the_rule_on_a_tie():
    from fmops_pipelines.specialist.gold_rows import GOLD_TEACHER, MAX_REPEATS, Recipe, gold_weight_choice

    class Folds:  # a CrossFit's out-of-fold score per gold weight, as measured
        def __init__(self, by_repeats):
            self.by_repeats, self.seen = by_repeats, []

        def score(self, recipe):
            self.seen.append(recipe.gold_repeats)
            return {"macro_f1": self.by_repeats[recipe.gold_repeats]}, {"oof": recipe.gold_repeats}

    recipe = Recipe(GOLD_TEACHER, lambda f: ([], np.zeros((0, 2)), []), fit="convex")
    heavier = gold_weight_choice(Folds({None: 0.93, MAX_REPEATS: 0.95}), recipe, "macro_f1")
    assert heavier["chosen"][0].gold_repeats == MAX_REPEATS and heavier["chosen"][2]["gold_repeats"] == MAX_REPEATS
    assert heavier["scores"] == {"rule": 0.93, str(MAX_REPEATS): 0.95, "chosen": str(MAX_REPEATS)}
    tie = Folds({None: 0.95, MAX_REPEATS: 0.95})
    assert gold_weight_choice(tie, recipe, "macro_f1")["chosen"][0].gold_repeats is None and tie.seen == [None, MAX_REPEATS]
    assert recipe.gold_repeats is None  # the recipe itself is left as it was


def test_the_gold_classifier_takes_sparse_features_of_more_than_two_labels():
    """TF-IDF features of a 4-label task (AG News): liblinear is two-label only, so one-vs-rest (a fit failed
    on ag_news before)."""
    from scipy import sparse

    from fmops_pipelines.supervision.gold_teacher import tune

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 15)
    X = sparse.csr_matrix(np.eye(4)[y] * 2 + rng.random((60, 4)))
    model = tune(X, y)
    assert model.predict_proba(X).shape == (60, 4) and (model.predict(X) == y).mean() > 0.9


@pytest.mark.parametrize("task", ["sms_spam", "ag_news"])
def test_the_grid_search_chooses_and_fits_what_scikit_learns_grid_search_does(task, tmp_path):
    """gold_teacher.grid_search against GridSearchCV(scoring="f1_macro") on real gold-sized slices: dense and
    sparse features, two labels and four (one-vs-rest): the same parameters and the same coefficients."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.multiclass import OneVsRestClassifier

    from fmops_pipelines.supervision.gold_teacher import C_GRID, grid_search

    spec = load_spec(write_task(tmp_path, task, shipped_spec(task)))
    df = load_dataset(spec)
    df = df[df["label"].isin(spec.label_names)].groupby("label").sample(30, random_state=0)
    y = label_indices(df["label"], spec.label_names)
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2).fit_transform(df["text"])
    dense = np.hstack([tfidf[:, :40].toarray(), np.random.default_rng(0).normal(size=(len(y), 8))])
    grid = {"C": C_GRID, "class_weight": [None, "balanced"]}
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    liblinear = LogisticRegression(max_iter=3000, solver="liblinear")
    sparse_model = OneVsRestClassifier(liblinear) if len(spec.label_names) > 2 else liblinear
    sparse_grid = {f"estimator__{k}": v for k, v in grid.items()} if len(spec.label_names) > 2 else grid
    for model, g, X in ((LogisticRegression(max_iter=3000), grid, dense), (sparse_model, sparse_grid, tfidf)):
        theirs = GridSearchCV(model, g, scoring="f1_macro", cv=folds).fit(X, y)
        ours = grid_search(model, g, X, y, folds)
        assert ours.best_params_ == theirs.best_params_
        coef = [e.coef_ for e in getattr(ours, "estimators_", [ours])]
        assert all(np.array_equal(a, b.coef_) for a, b in zip(coef, getattr(theirs.best_estimator_, "estimators_",
                                                                          [theirs.best_estimator_])))
        assert np.array_equal(ours.predict_proba(X), theirs.predict_proba(X))


@pytest.mark.parametrize("labels", [2, 4])
def test_self_training_gives_weight_to_words_only_the_pool_has(labels):
    """Gold-only, a word no gold row has weighs nothing; one self-training round labels the pool rows that hold it
    beside words gold taught, and the refit learns it (one-vs-rest, too, takes the weights)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from fmops_pipelines.supervision.gold_teacher import self_train, tune

    topics = ["prize cash", "lunch meeting", "goal match", "vote party"][:labels]
    unseen = ["zork", "quib", "flam", "drux"][:labels]  # in the pool only, one per label
    gold_texts = [f"{t} {i}" for t in topics for i in range(8)]
    pool_texts = [f"{t} {u}" for t, u in zip(topics, unseen) for _ in range(6)]
    X = TfidfVectorizer().fit(gold_texts + pool_texts + unseen).transform(gold_texts + pool_texts + unseen)
    y = np.repeat(np.arange(labels), 8)
    gold, pool = np.arange(len(gold_texts)), np.arange(len(gold_texts), len(gold_texts) + len(pool_texts))
    probe = np.arange(X.shape[0] - labels, X.shape[0])  # each unseen word alone
    model = tune(X[gold], y)
    assert np.ptp(model.predict_proba(X[probe]), axis=0).max() < 1e-6  # all alike: gold never saw them
    trained = self_train(model, X, y, gold, pool, labels)
    assert (trained.predict(X[probe]) == np.arange(labels)).all()


def test_gold_rows_are_repeated_to_about_a_fifth_of_the_rows():
    from fmops_pipelines.specialist.gold_rows import repeats, with_gold

    assert repeats(4000, 200) == 5 and repeats(100, 1000) == 1 and repeats(100000, 50) == 10 and repeats(10, 0) == 0
    texts, targets = with_gold(["a", "b"], np.array([[0.6, 0.4], [0.3, 0.7]]), ["g"], np.array([1]), 2, 3)
    assert texts == ["a", "b", "g", "g", "g"] and targets[2:].tolist() == [[0.0, 1.0]] * 3


def test_where_the_loss_happened_names_the_fit_or_the_generalisation():
    from fmops_pipelines.evaluation.teaching import where_the_loss_happened

    y = np.array([0, 1] * 50)
    teacher = np.eye(2)[y]
    wrong = y.copy()
    wrong[:20] = 1 - wrong[:20]
    pool_teacher = np.eye(2)[np.array([0, 1] * 100)]
    unfitted = where_the_loss_happened("gold teacher", teacher, 1 - pool_teacher.argmax(axis=1), pool_teacher,
                                       wrong, y, 2)
    assert unfitted["student_pool_agreement"] == 0.0 and "fits its teacher's labels on the pool poorly" in unfitted["finding"]
    fitted = where_the_loss_happened("gold teacher", teacher, pool_teacher.argmax(axis=1), pool_teacher, wrong, y, 2)
    assert fitted["loss"] > 0.1 and "generalises them worse" in fitted["finding"]
    level = where_the_loss_happened("gold teacher", teacher, pool_teacher.argmax(axis=1), pool_teacher, y, y, 2)
    assert level["finding"] == "the student is at or above its teacher on test"
    close = y.copy()
    close[0] = 1 - close[0]  # one test row of 100 wrong: below the teacher, but by less than MEANINGFUL_LOSS
    near = where_the_loss_happened("gold teacher", teacher, pool_teacher.argmax(axis=1), pool_teacher, close, y, 2)
    assert 0 < near["loss"] <= 0.01 and near["finding"] == (f"the student is within 0.01 of its teacher on test "
                                                           f"(below it by {near['loss']:.4f})")


def test_the_lineage_fingerprint_changes_with_one_gold_label(gold_slice):
    from fmops_pipelines.inference.lineage import gold_fingerprint

    _, splits = gold_slice
    before = gold_fingerprint(splits)
    assert before.startswith(f"{(splits['split'] == 'dev').sum()}:")
    assert gold_fingerprint(splits.sample(frac=1.0, random_state=0)) == before  # order-free
    changed = splits.copy()
    first = changed.index[changed["split"] == "dev"][0]
    changed.loc[first, "label"] = "spam" if changed.loc[first, "label"] == "ham" else "ham"
    assert gold_fingerprint(changed) != before


def test_side_by_side_features_join_only_the_rows_read_and_predict_as_the_joined_matrix(monkeypatch):
    """The embeddings + token vectors + TF-IDF candidate is never joined whole over the pool: rows index it lazily,
    and labelling the pool a chunk at a time gives what the whole joined matrix gives."""
    from scipy import sparse

    from fmops_pipelines.supervision import gold_teacher as gt

    rng = np.random.default_rng(0)
    dense = [rng.normal(size=(50, 4)).astype(np.float32), rng.normal(size=(50, 3)).astype(np.float32)]
    tfidf = sparse.random(50, 20, density=0.2, format="csr", random_state=0)
    X = gt.SideBySide(dense, tfidf, 0.5)
    whole = sparse.hstack([sparse.csr_matrix(np.hstack(dense) * 0.5), tfidf], format="csr")
    assert X.shape == whole.shape
    rows = np.array([3, 7, 7, 40])
    assert (X[rows].joined() != whole[rows]).nnz == 0
    y = (np.hstack(dense)[:, 0] > 0).astype(int)
    model = gt.tune(X[np.arange(30)], y[:30])
    monkeypatch.setattr(gt, "PREDICT_CHUNK", 7)  # several chunks, the last one short
    assert np.allclose(gt._proba(model, X, 2), gt._proba(model, whole, 2))


def test_side_by_side_rows_join_without_a_copy_of_the_rows_beside_the_result():
    """The self-training refit joins 10,000 pool rows of 640 dense columns at once; scipy's route to that matrix
    (csr_matrix of the dense blocks, then hstack) peaked at 3x the result (COO's row and column arrays), ~130 MB
    of the 67k-row run's peak. Written in place, the peak stays near the result's own size, rows without a TF-IDF
    entry and chunk boundaries (gt.JOIN_CHUNK) inside the rows included, and the matrix is the same."""
    import tracemalloc

    from scipy import sparse

    from fmops_pipelines.supervision import gold_teacher as gt

    rng = np.random.default_rng(0)
    n = 3000
    dense = [rng.normal(size=(n, 300)).astype(np.float32), rng.normal(size=(n, 200)).astype(np.float32)]
    tfidf = sparse.random(n, 4000, density=0.002, format="csr", random_state=0)
    rows = rng.permutation(n)[:2500]
    X = gt.SideBySide(dense, tfidf, 0.7)[rows]
    tracemalloc.start()
    try:
        out = X.joined()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = out.data.nbytes + out.indices.nbytes + out.indptr.nbytes
    assert peak < 1.5 * size
    assert (np.diff(tfidf[rows].indptr) == 0).any()  # some rows have nothing on the sparse side
    whole = sparse.hstack([sparse.csr_matrix(np.hstack(dense) * 0.7), tfidf], format="csr")[rows]
    assert out.dtype == np.float64 and out.shape == whole.shape and abs(out - whole).max() == 0


def test_the_labels_too_thin_to_cross_fit_gold_on_are_named_with_their_counts(gold_slice):
    """Where gold cannot be cross-fitted (no gold teacher), the run names which labels lack rows: gold a queue picked
    trains and never scores, so it does not count."""
    from fmops_pipelines.data.splits import PICKED, thin_gold_labels
    from fmops_pipelines.supervision.gold_teacher import FULL

    _, splits = gold_slice
    assert thin_gold_labels(splits, LABELS) == {}
    spam = splits.index[(splits["split"] == "dev") & (splits["label"] == "spam")]
    one_spam = splits.drop(spam[1:]).reset_index(drop=True)
    assert thin_gold_labels(one_spam, LABELS) == {"spam": 1}
    assert thin_gold_labels(one_spam, [*LABELS, "other"]) == {"spam": 1, "other": 0}
    gold = one_spam["split"] == "dev"
    assert (gold_folds(label_indices(one_spam.loc[gold, "label"], LABELS), 2, seed=0) == FULL).all()
    picked = splits.assign(**{PICKED: splits.index.isin(spam[1:])})  # all spam rows but one came from a queue
    assert thin_gold_labels(picked, LABELS) == {"spam": 1}


def test_the_label_models_teacher_row_names_the_recipes_that_read_its_labels():
    """The evaluation shows the label model that taught the specialist only for recipes reading its labels: the
    names it checks are the recipes' own (a renamed recipe would otherwise hide or show the row silently)."""
    from fmops_pipelines.evaluation.evaluate import LABEL_MODEL_TAUGHT
    from fmops_pipelines.specialist.encoder_teacher import TEACHER
    from fmops_pipelines.specialist.gold_rows import BOTH, GOLD_TEACHER, LABEL_MODEL, OWN

    assert set(LABEL_MODEL_TAUGHT) == {OWN, LABEL_MODEL, BOTH, TEACHER} and GOLD_TEACHER not in LABEL_MODEL_TAUGHT
