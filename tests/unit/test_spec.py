import pytest

from fmops_pipelines.errors import SpecError
from fmops_pipelines.spec import TaskSpec, discover_specs, get_spec, load_spec
from tests.conftest import REPO, shipped_spec, write_task


def test_shipped_specs_load():
    specs = discover_specs(REPO / "assets")
    assert {"sms_spam", "youtube_spam", "ag_news"} <= set(specs)
    assert specs["ag_news"].label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert all(spec.gates for spec in specs.values())


def _error(path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_invalid_yaml_names_file_and_line(assets_dir):
    path = assets_dir / "broken" / "task.yaml"
    path.parent.mkdir()
    path.write_text("labels: [ham, spam\nprompts: {")
    message = _error(path)
    assert str(path) in message and "invalid YAML" in message and "line" in message


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda s: s["splits"].update(dev_size=5), "splits.dev_size", "greater than or equal to 10"),
        (lambda s: s["prompts"].update(templates=["no slot here"]), "prompts.templates.0", "placeholder"),
        (lambda s: s["gates"].append({"metric": "vibes", "min": 1}), "gates.{n}.metric", "unknown gate metric"),
        (lambda s: s["gates"].append({"metric": "test_accuracy"}), "gates.{n}", "exactly one of 'min' or 'max'"),
        (lambda s: s["labels"].append(dict(s["labels"][0])), "labels", "duplicate label names"),
        (lambda s: s.pop("dataset"), "dataset", "Field required"),
        (lambda s: s["dataset"].update(path="x.csv"), "dataset", "exactly one of 'registry' or 'path'"),
        (lambda s: s.update(colour="red"), "colour", "Extra inputs are not permitted"),
        (lambda s: s.update(fm={"backend": "openai", "model": "m", "base_url": "http://x/v1", "precision": "bf16"}),
         "fm", "precision 'bf16' and runtime 'torch' are for the embedding backend"),
        (lambda s: s.update(fm={"precision": "int8"}), "fm", "precision 'int8' needs runtime 'onnx'"),
        (lambda s: s.update(fm={"precision": "bf16", "runtime": "onnx"}), "fm", "precision 'bf16' needs runtime 'torch'"),
        (lambda s: s.update(fm={"runtime": "tensorrt"}), "fm.runtime", "Input should be 'torch' or 'onnx'"),
    ],
)
def test_bad_field_is_named(assets_dir, mutate, field, reason):
    spec = shipped_spec("sms_spam")
    field = field.format(n=len(spec["gates"]))  # appended gates land at this index
    mutate(spec)
    message = _error(write_task(assets_dir, "sms_spam", spec))
    assert f"task.yaml: {field}: " in message
    assert reason in message


def test_unknown_task_lists_known_ones(assets_dir):
    write_task(assets_dir, "sms_spam", shipped_spec("sms_spam"))
    with pytest.raises(SpecError, match="no such task 'nope' .*known tasks: sms_spam"):
        get_spec("nope")


def test_fingerprint_changes_with_content(assets_dir):
    spec = shipped_spec("sms_spam")
    first = load_spec(write_task(assets_dir, "sms_spam", spec)).fingerprint()
    spec["prompts"]["max_labelers"] = 3
    assert load_spec(write_task(assets_dir, "sms_spam", spec)).fingerprint() != first


def test_inbox_defaults_under_fmops_home_and_the_old_input_field_says_what_replaced_it(assets_dir, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setenv("FMOPS_HOME", str(tmp_path / "home"))
    spec = load_spec(write_task(assets_dir, "sms_spam", shipped_spec("sms_spam")))
    assert spec.inbox() == tmp_path / "home" / "inbox" / "sms_spam"
    assert spec.inference.drift.max_psi == 0.2 and spec.inference.batch_size is None  # None: tuned
    own = shipped_spec("sms_spam") | {"inference": {"inbox": "incoming", "output_format": "csv"}}
    assert load_spec(write_task(assets_dir, "sms_spam", own)).inbox() == assets_dir / "sms_spam" / "incoming"
    old = shipped_spec("sms_spam") | {"inference": {"input": "unlabeled.csv"}}
    path = write_task(assets_dir, "sms_spam", old)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value) == (f"{path}: inference: 'input' was replaced by 'inbox': put input files in the inbox "
                              "folder (each file is one partition of batch_predictions)")


def test_the_spec_reference_page_is_generated_from_the_models_and_says_when_to_change_every_field():
    """docs/spec_reference.md cannot drift: it is what the generator makes of spec.py now, and every field that is
    not a section of its own carries a note on when to change it (a new field without one fails here)."""
    from pydantic import BaseModel

    from fmops_pipelines.spec_reference import field_notes, nested, render, sections

    assert (REPO / "docs" / "spec_reference.md").read_text() == render(), \
        "regenerate: python -m fmops_pipelines.spec_reference > docs/spec_reference.md"
    for path, model in sections(TaskSpec):
        notes = {}
        for cls in reversed(model.__mro__):
            if isinstance(cls, type) and issubclass(cls, BaseModel) and cls.__module__ == TaskSpec.__module__:
                notes |= field_notes(cls)
        for name, info in model.model_fields.items():
            assert nested(info.annotation) or notes.get(name), f"{path or 'top level'}.{name}: no note in spec.py"
