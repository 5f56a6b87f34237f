"""The embedding FM's transformer under ONNX Runtime: converted from the local weights at first use, cached.

The sentence-transformers model is split where its cost is: the transformer (nearly all the FLOPs) runs as an
ONNX graph, exported once from the packaged weights (no download) and, for `int8`, dynamically quantised;
tokenisation and the model's own pooling / normalisation modules stay sentence-transformers', so any model
folder it loads (mean or CLS pooling, a Dense head) keeps its meaning. int8 quantises the MatMul weights per
output channel only: quantising the word-embedding table too (onnxruntime's default op set) or per tensor put
some MiniLM embeddings at cosine 0.69-0.76 of fp32's, per channel on MatMuls alone at >= 0.94
(benchmarks/fm_runtimes.py measures what that does to the votes). Dynamic int8 also scales each batch's
activations by that batch's range, so a text's int8 embedding depends on the texts batched with it: one more
reason it is an option, not the default.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fmops_pipelines.fm.local_models import embedding_dimension
from fmops_pipelines.paths import atomic_path

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# bump when the export or the quantisation changes, so converted files of an older recipe are not reused
EXPORT_RECIPE = "1"


def converted_path(model_id: str, revision: str, precision: str) -> Path:
    """Where the converted graph of one model revision and precision lives (shared like the model folders)."""
    from fmops_pipelines.fm.model_registry import models_home

    name = Path(model_id).name or "model"
    return models_home() / "onnx" / f"{name}-{revision}-r{EXPORT_RECIPE}" / f"{precision}.onnx"


def _export_fp32(st_model, dest: Path) -> None:
    """The transformer module as an ONNX graph (dynamic batch and length), written atomically."""
    import torch

    transformer = st_model[0].auto_model.eval()
    sample = {k: v for k, v in st_model.preprocess(["a", "two words"]).items() if k in INPUTS}
    names = [k for k in INPUTS if k in sample]

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            return self.model(**dict(zip(names, tensors, strict=True))).last_hidden_state

    axes = {k: {0: "batch", 1: "tokens"} for k in [*names, "token_embeddings"]}
    with atomic_path(dest) as tmp, torch.no_grad():
        torch.onnx.export(TokenEmbeddings(transformer), tuple(sample[k] for k in names), str(tmp),
                          input_names=names, output_names=["token_embeddings"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)


def _quantise_int8(src: Path, dest: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_path(dest) as tmp:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])


def _require_onnx() -> None:
    import importlib.util

    missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        from fmops_pipelines.errors import SpecError

        raise SpecError(f"fm.runtime: 'onnx' needs {' and '.join(missing)}, which this environment lacks "
                        "(pip install 'fmops[onnx]', or runtime: torch)")


def ensure_converted(st_model, model_id: str, revision: str, precision: str) -> Path:
    """The converted graph, exported (and quantised) now if this revision has none yet."""
    _require_onnx()
    fp32 = converted_path(model_id, revision, "fp32")
    if not fp32.exists():
        _export_fp32(st_model, fp32)
    if precision == "fp32":
        return fp32
    target = converted_path(model_id, revision, precision)
    if not target.exists():
        _quantise_int8(fp32, target)
    return target


class OnnxEncoder:
    """Encodes texts as the sentence-transformers model does, with its transformer run by ONNX Runtime."""

    def __init__(self, st_model, graph: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # the process's OpenMP policy (fmops_pipelines/__init__.py) decides spinning for ORT's pool too
        if os.environ.get("OMP_WAIT_POLICY") == "PASSIVE":
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.st_model = st_model

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """L2-normalised sentence embeddings, in `texts`' order (callers sort by length for less padding)."""
        import torch

        heads = list(self.st_model)[1:]  # pooling, normalisation, dense layers: the model's own
        out = []
        for start in range(0, len(texts), batch_size):
            features = self.st_model.preprocess(list(texts[start:start + batch_size]))
            feed = {k: features[k].numpy() for k in self.inputs}
            tokens = self.session.run(None, feed)[0]
            features = {**features, "token_embeddings": torch.from_numpy(tokens)}
            with torch.no_grad():
                for module in heads:
                    features = module(features)
            vecs = features["sentence_embedding"].numpy()
            out.append(vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None))
        dim = embedding_dimension(self.st_model)
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, dim), dtype=np.float32)
