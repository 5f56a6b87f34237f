"""The FM backend a task spec asks for (each backend module is imported only when chosen)."""

from __future__ import annotations

from fmops_pipelines.errors import SpecError
from fmops_pipelines.fm.cache import FMCache


def build_fm(backend: str, model: str, cache: FMCache | None, batch_size: int | None = None, fm_spec=None,
             api_key: str | None = None):
    """The backend a spec asks for; fm_spec (an FMSpec) carries the openai endpoint settings, and `api_key`
    (from a resource) takes precedence over the variable the spec names."""
    if backend == "embedding":
        from fmops_pipelines.fm.embedding import EmbeddingFM

        return EmbeddingFM(model, cache=cache, batch_size=batch_size,  # None: by device (fm/embedding.py)
                           precision=fm_spec.precision if fm_spec is not None else "fp32",
                           runtime=fm_spec.runtime if fm_spec is not None else "torch")
    if backend == "hf-generative":
        from fmops_pipelines.fm.generative import GenerativeFM

        # 8 measured fastest on a 2-core CPU (benchmarks/fm_throughput.py); raise it on a GPU
        return GenerativeFM(model, cache=cache, batch_size=batch_size or 8)
    if backend == "openai":
        from fmops_pipelines.fm.openai_compat import OpenAICompatibleFM

        if fm_spec is None or not fm_spec.base_url:
            raise SpecError("fm.base_url: backend 'openai' needs the endpoint's base_url")
        return OpenAICompatibleFM(model, fm_spec.base_url, fm_spec.api_key_env, cache, fm_spec.max_concurrency,
                                  fm_spec.timeout_s, fm_spec.max_retries, api_key=api_key)
    raise SpecError(f"fm.backend: unknown backend '{backend}'")


def fm_from_spec(fm_spec, cache: FMCache | None, api_key: str | None = None):
    return build_fm(fm_spec.backend, fm_spec.model, cache, fm_spec.batch_size, fm_spec, api_key)
