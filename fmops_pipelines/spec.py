"""TaskSpec: the user's data program (assets/<task>/task.yaml), validated with pydantic.

Every validation problem becomes one line naming the file, the field and the reason, so a user can fix
the spec without reading a traceback.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from fmops_pipelines.errors import SpecError
from fmops_pipelines.paths import assets_dir, fmops_home

# The gate metrics a spec may name; fmops_pipelines.evaluation.gates computes each one.
GATE_METRICS = ("label_coverage", "label_model_dev_accuracy", "test_accuracy", "test_macro_f1", "min_class_f1",
                "slice_macro_f1", "lift_over_best_prompt", "lift_over_label_model", "lift_over_gold_only", "ece",
                "regression_vs_champion", "specialist_texts_per_s", "speedup_over_fm")

TASK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelSpec(_Strict):
    """One class: its name, and the phrases (verbalizers) prompts use to describe it."""

    name: str = Field(min_length=1)  # as the data's label column writes it (or via dataset.label_map)
    description: str = ""  # for people (the report); prompts use the verbalizers
    # phrases a text of this label would say: the FM compares texts with them
    verbalizers: list[str] = Field(min_length=1)


class DatasetSpec(_Strict):
    """Either a registry dataset (pinned URL + sha256) or a local CSV / TSV / Parquet / JSONL file."""

    registry: str | None = None  # a dataset fmops pins (sms_spam_uci, ...); or `path`
    path: str | None = None  # your CSV / TSV / Parquet / JSONL file, relative to the task folder; or `registry`
    text_column: str = "text"  # the column holding the text
    label_column: str | None = "label"  # gold labels; an empty cell is an unlabelled row; null: none
    id_column: str | None = None  # stable row ids (kept in outputs); default: row numbers
    split_column: str | None = None  # train / dev / test (validation, valid, val: dev): its splits, test as declared
    split_files: dict[Literal["test", "dev"], str] = Field(default_factory=dict)  # or one file per split
    # labelled files beside `path` (the same columns): their rows are gold, dev and test drawn from them as from
    # labelled rows of `path`, which may then hold only unlabelled text (no label column needed there)
    gold_files: list[str] = Field(default_factory=list)
    label_map: dict[str, str] = Field(default_factory=dict)  # raw label value -> label name, e.g. {'1': spam}

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if (self.registry is None) == (self.path is None):
            raise ValueError("give exactly one of 'registry' or 'path'")
        if self.gold_files and (self.path is None or self.split_files):
            raise ValueError("gold_files goes with 'path' (not a registry dataset, not split_files)")
        if self.split_files and (self.path is None or "test" not in self.split_files or self.split_column):
            raise ValueError("split_files goes with 'path' (the train rows), needs a 'test' file, and replaces "
                             "split_column")
        return self

    @property
    def declared_split_column(self) -> str | None:
        """The column holding the dataset's own splits, if it declares them (split_files fill `split`)."""
        return "split" if self.split_files else self.split_column


class SplitSpec(_Strict):
    """Gold (split "dev"): every labelled row outside test, which teaches and chooses; test: held out; the rest
    is the unlabelled pool."""

    # a cap on gold rows (a stratified draw; the rest lose their labels), e.g. to simulate a team with 200
    # labels; null: every labelled row outside test is gold
    dev_size: int | None = Field(default=None, ge=10)
    test_fraction: float = Field(default=0.2, gt=0.0, lt=0.9)  # share of labelled texts held out for test
    seed: int = 0  # another seed draws other splits
    # another draw of the capped gold rows with the test split unchanged (label-budget curves); null: seed + 1
    gold_seed: int | None = None
    max_rows: int | None = Field(default=None, ge=50)  # a stratified sample of the data, for quick trials


class FMSpec(_Strict):
    """The foundation model. embedding: a sentence-transformers folder (default the packaged MiniLM);
    hf-generative: a local causal or seq2seq LM folder; openai: a model name on an OpenAI-compatible server."""

    # how the FM is reached: embeddings, a local LM, or an endpoint
    backend: Literal["embedding", "hf-generative", "openai"] = "embedding"
    model: str = "all-MiniLM-L6-v2"  # a name `fmops models` knows or a local folder (embedding / hf-generative)
    # texts per forward pass; default per backend: embedding 16 on CPU (as fast as 64 on 2 cores, a third of its
    # memory) and 64 on a GPU, generative 8 (CPU-best)
    batch_size: int | None = Field(default=None, ge=1)
    base_url: str | None = None  # openai: e.g. http://localhost:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # the variable holding the key; the key itself never goes in a spec
    max_concurrency: int = Field(default=8, ge=1)  # openai: requests in flight
    timeout_s: float = Field(default=30.0, gt=0)  # openai: per request
    max_retries: int = Field(default=4, ge=0)  # openai: before a row abstains
    # embedding backend: "bf16" encodes under bfloat16 autocast, ~2x MiniLM's texts/s on a CPU with AMX or
    # AVX512-BF16 and embeddings within cosine 0.9999 of fp32's, but 0.14x where the CPU emulates bf16 (a 2-core
    # AVX2 host: `fmops plan` and the prompt_scores step warn there); cached apart from fp32's. A faster FM also
    # lowers the specialist's measured speedup_over_fm.
    # int8 (runtime onnx only): MatMul weights quantised per channel; on a 2-core AVX2 host 1.3-1.7x fp32's
    # texts/s, but it changed a twentieth of the votes, about half the rows' (benchmarks/fm_runtimes.py)
    precision: Literal["fp32", "bf16", "int8"] = "fp32"
    # embedding backend: torch, or onnx (ONNX Runtime on CPU, the model converted from its local weights at
    # first use and kept under the model home); answers of each runtime and precision are cached apart
    runtime: Literal["torch", "onnx"] = "torch"
    # rows the FM labels per run (null: every row): gold and test first, then a sample chosen to cover the pool
    # with the rest (data/fm_budget.py); the pool's other rows are left to the labeling functions, the mined
    # rules and the student's self-training, so FM calls stop growing with the pool; `fmops plan TASK` shows both
    budget: int | None = Field(default=None, ge=100)
    # a priced endpoint's USD per million input tokens, for `fmops plan`'s cost (tokens estimated from characters)
    usd_per_million_tokens: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _endpoint(self) -> FMSpec:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url")
        if (self.precision != "fp32" or self.runtime != "torch") and self.backend != "embedding":
            raise ValueError(f"precision '{self.precision}' and runtime '{self.runtime}' are for the embedding backend "
                             "(hf-generative runs bf16 on a GPU and fp32 on CPU; an openai endpoint chooses its own)")
        if self.precision == "int8" and self.runtime != "onnx":
            raise ValueError("precision 'int8' needs runtime 'onnx' (torch's CPU int8 is not offered)")
        if self.precision == "bf16" and self.runtime != "torch":
            raise ValueError("precision 'bf16' needs runtime 'torch' (bfloat16 autocast)")
        return self


class PromptSpec(_Strict):
    """Candidate prompts are templates x verbalizers (plus, for generative backends, AMA-style question
    reformulations); the best diverse ones become labelers. Templates need `{label}` for the embedding
    backend and `{text}` for generative ones."""

    templates: list[str] = Field(min_length=1)  # each filled with every verbalizer makes a candidate labeler
    max_labelers: int = Field(default=8, ge=1)  # candidates kept as labelers, best on dev and diverse
    # a labeler abstains below its calibrated confidence on at most this share
    min_coverage: float = Field(default=0.3, gt=0.0, le=1.0)
    reformulations: bool = True  # generative backends only
    # embedding backend: one more candidate, the FM "prompted" with the dev examples (label = centroid of
    # its gold dev texts), scored out-of-fold on dev so its dev numbers are not fitted on its own shots
    few_shot: bool = True
    # "probe": the few-shot labeler is a logistic regression on the examples' embeddings (fm/probe.py): a far
    # better labeler (sms_spam held-out test macro-F1 0.929 against the centroid's 0.830), but the n-gram
    # specialist learns no more from it (0.913 against 0.911; youtube_spam 0.901 both, ag_news 0.858 against
    # 0.866) and on two of the three falls short of its own best labeler, which the lift gate blocks
    few_shot_labeler: Literal["centroid", "probe"] = "centroid"
    # the best labeler on dev votes on every row (no abstain threshold): where every other labeler
    # abstains, the label model falls back to the FM's best guess instead of the class prior
    anchor: bool = True


class LabelingFunctionSpec(_Strict):
    """A rule that votes `label` when any keyword (whole word or phrase) or the regex matches, else abstains."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # the labeler's name in the matrix and reports
    label: str  # the label it votes
    keywords: list[str] | None = Field(default=None, min_length=1)  # votes when any word or phrase occurs; or `regex`
    regex: str | None = None  # votes when it matches; or `keywords`

    @model_validator(mode="after")
    def _one_rule(self) -> LabelingFunctionSpec:
        if (self.keywords is None) == (self.regex is None):
            raise ValueError("give exactly one of 'keywords' or 'regex'")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from None
        return self


class FmRulesSpec(_Strict):
    """Keyword rules mined from the FM's own labels on a fixed-size sample of train, each phrase kept only
    if dev's gold labels confirm it (supervision/mined_lfs.py). They vote on every row with no FM calls.

    Off by default: on the three shipped tasks they raised the label model's test macro-F1 (sms_spam 0.782 ->
    0.796, youtube_spam 0.898 -> 0.920) but not the specialist's (0.860 -> 0.854, 0.907 -> 0.898, ag_news
    0.855 -> 0.850), which learns the same n-grams from the prompts' labels itself. They pay off where the FM
    cannot label every row (cost fixed by sample_size; benchmarks/fm_rules_cost.py)."""

    enabled: bool = False  # mine rules where the FM cannot label every row
    sample_size: int = Field(default=2000, ge=50)  # train rows the FM labels for mining, whatever the data size
    max_ngram: int = Field(default=2, ge=1, le=3)  # longest phrase mined, in words
    min_support: int = Field(default=5, ge=2)  # sample rows (with an FM label) that contain the phrase
    min_fm_precision: float = Field(default=0.8, gt=0.5, le=1.0)  # share of a phrase's FM labels that agree
    max_fdr: float = Field(default=0.05, gt=0.0, le=1.0)  # of the FM-side test over all phrases
    min_dev_hits: int = Field(default=3, ge=1)  # dev rows a phrase must occur in
    # dev precision a phrase needs; it must also halve the error of always guessing its label
    min_precision: float = Field(default=0.8, gt=0.5, le=1.0)
    max_keywords_per_label: int = Field(default=25, ge=1)  # phrases kept per label


class GoldTeacherSpec(_Strict):
    """The gold teacher (supervision/gold_teacher.py): logistic regression on the FM's embeddings, on TF-IDF, or on the
    embeddings and the FM's pooled token vectors beside TF-IDF (embedding FMs), chosen out of fold (the last, which
    holds the others' features, unless another scores above it beyond noise); optionally also SetFit, the FM's
    encoder fine-tuned contrastively on gold (the `setfit` extra). A logistic regression is then self-trained once on
    the pool where that scores better out of fold."""

    # contrastive: SetFit as a further candidate, trained once per gold fold and once on all gold. "auto": on a
    # GPU only. Measured on 2 CPU cores, one SetFit fit (MiniLM, 5 iterations, ~200 gold rows) takes minutes,
    # the teacher six of them; the logistic regressions take seconds
    contrastive: Literal["auto", "on", "off"] = "auto"
    contrastive_iterations: int = Field(default=5, ge=1)  # SetFit's pairs per gold row (its num_iterations)
    # labeler: the teacher also votes in the weak label matrix (column gold_teacher; gold rows out of fold), so the
    # label models weigh it beside the prompts and rules, and `best_labeler` / `stacked` can make it the teacher
    labeler: bool = True


class LabelModelSpec(_Strict):
    # auto: chosen on dev; or one kind
    kind: Literal["auto", "majority_vote", "best_labeler", "snorkel", "dawid_skene", "stacked"] = "auto"
    # what 'auto' maximises on dev: "student" = the dev score of a fast n-gram student trained on each kind's
    # labels, the simplest kind within dev's noise of the best kept (the specialist is what ships; measured on
    # sms_spam: the best student on dev, dawid_skene's, 0.860 test macro-F1; majority vote's, 0.009 behind it
    # on dev and within one standard error, 0.902); "label_model" = the label model's own
    select_by: Literal["student", "label_model"] = "student"
    epochs: int = Field(default=500, ge=1)  # snorkel's training epochs
    min_coverage: float = Field(default=0.0, ge=0.0, le=1.0)  # blocking check on the train label matrix


class NgramStudentSpec(_Strict):
    """The fast student: hashed word (and optional character) n-grams into a torch EmbeddingBag."""

    word_ngrams: tuple[int, int] = (1, 2)  # [smallest, largest] word n-gram
    # char_wb n-grams beside the word n-grams (e.g. [2, 4]); the `ngram_char` section's student has them
    char_ngrams: tuple[int, int] | None = None
    hash_bits: int = Field(default=20, ge=10, le=24)  # 2**hash_bits hashed features per family
    embed_dim: int = Field(default=16, ge=2)  # width of the bag-of-n-grams embedding
    dropout: float = Field(default=0.2, ge=0, lt=1)  # higher for noisier labels
    epochs: int = Field(default=30, ge=1)  # at most; early stopping on dev
    batch_size: int = Field(default=128, ge=1)  # rows per step
    learning_rate: float = Field(default=0.001, gt=0)  # Adam's; larger for a few hundred rows
    weight_decay: float = Field(default=0.0, ge=0)  # L2 on the dense head
    patience: int = Field(default=5, ge=1)  # epochs without a better dev score before stopping
    # "adam": the network above, trained by epochs; "lbfgs": a logistic regression over the same features (one
    # column per class, no epochs, learning rate or dropout), served the same way (specialist/ngram_convex.py)
    solver: Literal["adam", "lbfgs"] = "adam"

    @field_validator("word_ngrams", "char_ngrams")
    @classmethod
    def _range(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not 1 <= v[0] <= v[1]:
            raise ValueError(f"an n-gram range is [smallest n, largest n] with 1 <= smallest <= largest, not {list(v)}")
        return v


class NgramCharStudentSpec(NgramStudentSpec):
    """The `ngram_char` architecture: the n-gram student with char_wb n-grams beside the word n-grams,
    word and char features normalised apart (as scikit-learn's FeatureUnion of two TF-IDF vectorisers)."""

    char_ngrams: tuple[int, int] = (2, 4)  # [smallest, largest] char_wb n-gram


class LightFitSpec(_Strict):
    """A second training of each n-gram student with these settings, the dev choice between the two made within
    dev's noise (the section's own settings count as the simpler). The sections' defaults regularise for noisy
    labels: on gold train labels these settings lifted sms_spam's spam F1 0.904 -> 0.933 (`ngram_char`) and
    ag_news accuracy 0.866 -> 0.881 (`ngram`), while on MiniLM's weak sms_spam labels they fit the noise (0.890 ->
    0.835) and dev rejected them (benchmarks/label_gap.py). Labels near gold (a strong FM, hand rules) gain."""

    learning_rate: float = Field(default=0.01, gt=0)  # the light fit's
    dropout: float = Field(default=0.0, ge=0, lt=1)  # the light fit's


class EncoderStudentSpec(_Strict):
    """The quality student: a pretrained encoder fine-tuned end to end (~20 samples/s on 2 CPU cores)."""

    model: str = "all-MiniLM-L6-v2"  # the packaged MiniLM, or a local Hugging Face encoder folder
    max_length: int = Field(default=128, ge=8)  # tokens per text; longer texts are cut
    dropout: float = Field(default=0.1, ge=0, lt=1)  # of the classification head
    epochs: int = Field(default=3, ge=1)  # at most; early stopping on dev
    batch_size: int = Field(default=32, ge=1)  # rows per step (larger on a GPU)
    learning_rate: float = Field(default=5e-5, gt=0)  # AdamW's
    weight_decay: float = Field(default=0.01, ge=0)  # AdamW's
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)  # share of steps with a rising learning rate
    patience: int = Field(default=2, ge=1)  # epochs without a better dev score before stopping


class SpecialistSpec(_Strict):
    """The distilled student: one or more architectures trained on the same probabilistic labels; the
    best on dev by `objective` among those reaching `min_throughput` texts/s is registered."""

    # `ngram_char` is the n-gram student with character n-grams too (its own section). Both are candidates by
    # default; dev keeps the word-only one (3-4x faster served) unless the other is better beyond dev's noise, and
    # with `average` (the default) their mean ships instead: char n-grams help informal text and hurt news. Measured
    # on the label-model labels, test macro-F1 mean of 3 seeds, word vs word+char (vs dev's choice): sms_spam 0.916
    # vs 0.942 (0.928), youtube_spam 0.897 vs 0.918 (0.897), ag_news 0.865 vs 0.852 (0.865)
    architectures: list[Literal["ngram", "ngram_char", "encoder"]] = Field(default=["ngram", "ngram_char"],
                                                                          min_length=1)
    objective: Literal["macro_f1", "accuracy"] = "macro_f1"  # measured on dev
    # The serving floor: texts per CPU-second of each candidate through the scorer batch inference runs (the
    # compiled n-gram scorer; the torch model for an encoder), one process, timed on the training machine (CPU
    # time, which a busy machine stretches less than the wall clock; a candidate within 2x short of it is timed
    # up to three more times and keeps its best). A slower candidate is not chosen however it scores on dev; if
    # none is fast enough the fastest ships flagged. null: no floor.
    min_throughput: float | None = Field(default=None, gt=0)
    # soft_ce learns the label model's probabilities; hard its argmax
    loss: Literal["soft_ce", "confidence_weighted", "hard"] = "soft_ce"
    # Whose labels the fast students learn: the label model's, or those of an encoder (the `encoder` section)
    # fine-tuned on the label model's labels, which then labels every train row (knowledge distillation;
    # the directly taught student stays a candidate). The encoder trains at ~20-30 samples/s on 2 CPU
    # cores and hundreds to thousands on a GPU.
    teacher: Literal["label_model", "encoder"] = "label_model"
    seed: int = 0  # another seed trains other weights
    # torch's deterministic kernels while training (where it has them; fixed cuBLAS workspace, no cuDNN
    # autotuning): two runs of one spec on one GPU train the same weights, at some speed. CPU runs repeat anyway.
    deterministic: bool = False
    ngram: NgramStudentSpec = NgramStudentSpec()
    ngram_char: NgramCharStudentSpec = NgramCharStudentSpec()
    # each n-gram student also trained lightly regularised, dev choosing (null: only the sections' own settings;
    # with teacher: encoder, the distilled candidates are trained only with their sections' settings)
    light_fit: LightFitSpec | None = LightFitSpec()
    # each n-gram student also fitted as a logistic regression over its TF-IDF-weighted features (its section's
    # `solver: lbfgs`), a candidate like any other: dev chooses; with idf weights of its own it joins no average
    # (specialist/ngram_convex.py).
    # Off by default: on a majority vote's soft labels it scored 0.05-0.10 below the network, and joined to the
    # shipped average it moved nothing (test macro-F1 over 3 gold draws: sms_spam 0.937 vs 0.939, youtube_spam 0.918
    # both; docs/specialists.md)
    convex_fit: bool = False
    encoder: EncoderStudentSpec = EncoderStudentSpec()
    # Re-weight the soft labels towards the dev class balance (label-shift correction). Off by default:
    # with calibrated label-model probabilities it over-corrects (sms_spam test macro-F1 0.865 -> 0.584).
    match_dev_prior: bool = False
    # One self-training round over the unlabeled rows no labeler covered; kept only if dev macro-F1 does
    # not drop (measured: sms_spam test macro-F1 0.854 -> 0.873, youtube_spam 0.907 -> 0.912).
    self_training: bool = True
    self_training_threshold: float = Field(default=0.9, gt=0.5, le=1.0)  # confidence a pseudo-label needs
    # gold rows teach too: the chosen student trained again with them (one-hot, repeated to about a fifth of its
    # rows) beside both teachers' labels on the pool (label model and gold teacher), scored out of fold on gold
    # against the chosen student's own recipe; it ships only when better by twice the noise
    # (specialist/gold_rows.py). false: gold only chooses, as before.
    gold_rows: bool = True
    # What ships is the mean of the n-gram candidates trained on the chosen student's labels (word and word+char,
    # each fit), folded into one student over the word+char features (specialist/averaging.py): dev's few hundred
    # rows cannot rank them, and the one it kept was often not the best on test (students_on_tasks.py, 2 seeds:
    # the mean 0.941 / 0.916 on sms_spam / youtube_spam, the best candidate 0.941 / 0.914, dev's choice 0.941 /
    # 0.898). A recipe with gold rows contends, and ships, as the mean of its word and word+char students
    # (youtube_spam prompts only, 3 seeds: 0.921 against 0.907). Not with a sampled pool (trial_rows). false: the
    # chosen one ships.
    average: bool = True
    # A pool with more train rows than this is sampled (seeded, at random) to this many for the step's choices
    # (teacher, anchor rows, architecture, fit, the gold rows' recipe: a dozen trainings or more); the chosen
    # student is then trained once more on every row, as it would be without a sample. Choices need a sample that
    # ranks the students, not the whole pool: the step costs about what it costs at this size, plus one training
    # (SST-2 phrases, 65k rows: 129 s against 528 s, test macro-F1 0.758 vs 0.759). null: every training sees all.
    trial_rows: int | None = Field(default=5000, ge=500)

    @field_validator("architectures")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("each architecture at most once")
        return v


class SliceSpec(_Strict):
    """A way to cut the test split: text-length buckets (character bounds) or a metadata column's values."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")  # the slice's name in reports and in slice_macro_f1 gates
    # character bounds between buckets, e.g. [40, 120]; or `column`
    length_buckets: list[int] | None = Field(default=None, min_length=1)
    column: str | None = None  # a metadata column whose values are the buckets; or `length_buckets`
    min_rows: int = Field(default=20, ge=1)  # smaller buckets are reported but not gated

    @model_validator(mode="after")
    def _one_kind(self) -> SliceSpec:
        if (self.length_buckets is None) == (self.column is None):
            raise ValueError("give exactly one of 'length_buckets' or 'column'")
        if self.length_buckets is not None and self.length_buckets != sorted(set(self.length_buckets)):
            raise ValueError("length_buckets must be strictly increasing character counts")
        return self


class GateSpec(_Strict):
    """A blocking check on the evaluation: metric >= min, or metric <= max."""

    metric: str  # what is checked (see the list in docs/operating.md)
    min: float | None = None  # passes at or above; or `max`
    max: float | None = None  # passes at or below; or `min`
    name: str | None = None  # the check's name; default the metric's
    slice: str | None = None  # for slice_macro_f1: the declared slice whose worst bucket is gated

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in GATE_METRICS:
            raise ValueError(f"unknown gate metric '{metric}' (known: {', '.join(GATE_METRICS)})")
        return metric

    @model_validator(mode="after")
    def _one_bound(self) -> GateSpec:
        if (self.min is None) == (self.max is None):
            raise ValueError("a gate needs exactly one of 'min' or 'max'")
        if (self.metric == "slice_macro_f1") != (self.slice is not None):
            raise ValueError("'slice' goes with metric slice_macro_f1, and that metric needs it")
        return self

    @property
    def threshold(self) -> float:
        return self.min if self.min is not None else self.max  # type: ignore[return-value]

    def passes(self, value: float) -> bool:
        return value >= self.min if self.min is not None else value <= self.max  # type: ignore[operator]

    @property
    def check_name(self) -> str:
        return self.name or (f"{self.metric}_{self.slice}" if self.slice else self.metric)


class DriftSpec(_Strict):
    """Per-partition drift of predictions against the champion's test-set profile: the population stability
    index of predicted classes past `max_psi`, or mean confidence lower by more than `max_confidence_drop`,
    makes the check warn (non-blocking)."""

    max_psi: float = Field(default=0.2, gt=0)  # population stability index of predicted classes that warns
    max_confidence_drop: float = Field(default=0.1, gt=0, lt=1)  # fall of mean confidence that warns
    min_rows: int = Field(default=100, ge=1)  # fewer predictions than this say nothing about a distribution
    retrain: bool = False  # on drift, a sensor launches the lifecycle job (relabel, retrain, gate)


class InferenceSpec(_Strict):
    """Batch inference: files landing in the inbox become partitions scored by the champion. Settings left
    empty are chosen by the throughput tuner on the machine that runs them."""

    inbox: str | None = None  # default FMOPS_HOME/inbox/<task>; relative paths resolve against the task folder
    text_column: str = "text"  # the column `fmops predict` and the inbox read
    output_format: Literal["parquet", "csv"] = "parquet"  # of the files batch inference writes
    settle_seconds: float = Field(default=5.0, ge=0)  # a file younger than this may still be being written
    batch_size: int | None = Field(default=None, ge=1)  # fix instead of tuning
    workers: int | None = Field(default=None, ge=1)  # fix instead of tuning (n-gram champions: processes)
    threads: int | None = Field(default=None, ge=1)  # fix instead of tuning (torch champions)
    device: str = "auto"  # 'auto': cuda for a torch champion when present; the n-gram champion runs on CPU
    drift: DriftSpec = DriftSpec()

    @model_validator(mode="before")
    @classmethod
    def _input_replaced(cls, raw):
        if isinstance(raw, dict) and "input" in raw:
            raise ValueError("'input' was replaced by 'inbox': put input files in the inbox folder (each file "
                             "is one partition of batch_predictions)")
        return raw


class ReviewSpec(_Strict):
    """The review loop (docs/improving_a_task.md): each round asks a person for the labels worth most, through Label
    Studio (`fmops review TASK`) or a CSV; the next run learns from them as gold."""

    budget: int = Field(default=50, ge=1)  # unlabelled rows a round asks a person to label
    rechecks: int = Field(default=10, ge=0)  # gold rows whose label looks wrong (cleanlab), flagged for a second look
    # the most uncertain budget x candidates rows are clustered on the FM's embeddings, one row per cluster
    candidates: int = Field(default=10, ge=1)
    # new labels in the gold store since the last launch that make the review sensor launch the lifecycle
    # (gated as always); null: the sensor only imports
    retrain_after: int | None = Field(default=50, ge=1)
    project_title: str | None = None  # the Label Studio project's title; default "fmops: <task>"


class TaskSpec(_Strict):
    name: str  # the folder's name; must match it
    description: str = ""  # one line shown on the task's assets in the UI
    # Dagster owners of every asset (team:... or an e-mail)
    owners: list[str] = Field(default_factory=lambda: ["team:ml-platform"])
    dataset: DatasetSpec  # where the texts and gold labels come from
    labels: list[LabelSpec] = Field(min_length=2)  # at least two; their order is the model's class order
    splits: SplitSpec = SplitSpec()
    fm: FMSpec = FMSpec()
    prompts: PromptSpec  # the FM labelers
    # your own keyword / regex rules, as extra labelers
    labeling_functions: list[LabelingFunctionSpec] = Field(default_factory=list)
    fm_rules: FmRulesSpec = FmRulesSpec()
    label_model: LabelModelSpec = LabelModelSpec()
    gold_teacher: GoldTeacherSpec = GoldTeacherSpec()
    specialist: SpecialistSpec = SpecialistSpec()
    slices: list[SliceSpec] = Field(default_factory=list)  # cuts of test reported (and gateable) apart
    gates: list[GateSpec] = Field(default_factory=list)  # blocking checks a specialist must pass to become champion
    inference: InferenceSpec = InferenceSpec()
    review: ReviewSpec = ReviewSpec()  # the review queue and its rounds (Label Studio or CSV)
    _folder: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not TASK_NAME.match(name):
            raise ValueError("must be lowercase letters, digits and '_' (it prefixes asset keys)")
        return name

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: list[LabelSpec]) -> list[LabelSpec]:
        names = [label.name for label in labels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate label names: {dupes}")
        return labels

    @model_validator(mode="after")
    def _templates_fit_backend(self) -> TaskSpec:
        slot = "{label}" if self.fm.backend == "embedding" else "{text}"
        for i, template in enumerate(self.prompts.templates):
            if slot not in template:
                raise ValueError(f"prompts.templates.{i} has no '{slot}' placeholder, which the "
                                 f"{self.fm.backend} backend needs: {template!r}")
        return self

    @model_validator(mode="after")
    def _lf_labels_declared(self) -> TaskSpec:
        for i, lf in enumerate(self.labeling_functions):
            if lf.label not in self.label_names:
                raise ValueError(f"labeling_functions.{i}.label '{lf.label}' is not one of {self.label_names}")
            if lf.name.startswith("fm_"):
                raise ValueError(f"labeling_functions.{i}.name '{lf.name}': the prefix 'fm_' is kept for the "
                                 "rules fmops mines from the FM (fm_rules); rename it")
        return self

    @model_validator(mode="after")
    def _gate_slices_declared(self) -> TaskSpec:
        declared = {s.name for s in self.slices}
        for i, gate in enumerate(self.gates):
            if gate.slice is not None and gate.slice not in declared:
                raise ValueError(f"gates.{i}.slice '{gate.slice}' is not a declared slice ({sorted(declared)})")
        return self

    @model_validator(mode="after")
    def _unique_gate_names(self) -> TaskSpec:
        names = [g.check_name for g in self.gates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate gate names {dupes}: give each a distinct 'name'")
        return self

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def root(self) -> Path:
        """The task's folder: relative dataset and inference paths resolve against it."""
        return self._folder or assets_dir() / self.name

    def inbox(self) -> Path:
        """Where new input files land (one partition each)."""
        if self.inference.inbox is None:
            return fmops_home() / "inbox" / self.name
        path = Path(self.inference.inbox)
        return path if path.is_absolute() else self.root / path

    def fingerprint(self) -> str:
        """Short content hash: the asset code_version, so Dagster shows when a spec changed."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]


def _format_validation_error(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if not first["loc"] and re.match(r"^[a-z_]+(\.[\w]+)+ ", msg):  # cross-field checks name their own field
        field, msg = msg.split(" ", 1)
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: {field}: {msg}{more}"


def load_spec(path: Path) -> TaskSpec:
    """Read and validate one task.yaml; raises SpecError with file, field and reason."""
    if not path.is_file():
        raise SpecError(f"{path}: task spec not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}:{where}: invalid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: (top level): expected a mapping of fields, got {type(raw).__name__}")
    raw.setdefault("name", path.parent.name)
    try:
        spec = TaskSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_validation_error(path, exc)) from None
    if spec.name != path.parent.name:
        raise SpecError(f"{path}: name: '{spec.name}' must match its folder '{path.parent.name}'")
    spec._folder = path.parent.resolve()
    return spec


def discover_specs(root: Path | None = None) -> dict[str, TaskSpec]:
    """Every assets/<task>/task.yaml, by task name."""
    root = root or assets_dir()
    return {p.parent.name: load_spec(p) for p in sorted(root.glob("*/task.yaml"))}


def get_spec(task: str, root: Path | None = None) -> TaskSpec:
    root = root or assets_dir()
    path = root / task / "task.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.parent.name for p in root.glob("*/task.yaml"))) or "none"
        raise SpecError(f"{path}: no such task '{task}' (known tasks: {known})")
    return load_spec(path)
