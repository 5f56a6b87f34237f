"""The champion as a local serving bundle: the model in its fastest loadable form plus what batch inference
needs to know about it (labels, lineage, drift reference, the FM's measured rate for cost accounting).

A bundle is exported once per registered version into FMOPS_HOME/serving/<task>/<store>/v<version>/
(<store>: a hash of the tracking URI) and is immutable, so later runs and `fmops predict` load it in
milliseconds without MLflow. Which version is the champion is always asked of the registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from fmops_pipelines import paths
from fmops_pipelines.errors import StateError
from fmops_pipelines.inference.registry_alias import alias_version
from fmops_pipelines.specialist.registry_names import model_name

BUNDLE_FILE = "bundle.json"
MODEL_DIR = "model"
# model version tags written by the training and evaluation stages, read back here
TAG_LABEL_MODEL, TAG_FINGERPRINT = "label_model", "labelers_fingerprint"
TAG_REFERENCE, TAG_FM_RATE = "fmops.reference", "fmops.fm_texts_per_s"


@dataclass(frozen=True)
class Bundle:
    directory: Path
    info: dict

    @property
    def version(self) -> str:
        return self.info["version"]

    def scorer(self, device: str = "cpu"):
        from fmops_pipelines.inference.scorers import load_scorer

        return load_scorer(self.directory / MODEL_DIR, self.info["architecture"], device)


def serving_dir(task: str, tracking_uri: str) -> Path:
    store = hashlib.sha256(tracking_uri.encode()).hexdigest()[:8]
    return paths.fmops_home() / "serving" / task / store


def export_bundle(task: str, version: str, tracking_uri: str) -> Path:
    """Write the bundle of a registered version (needs MLflow and torch); safe against concurrent exports."""
    import mlflow

    from fmops_pipelines.mlflow_store import using_uri
    from fmops_pipelines.specialist.packaging import load_specialist

    target = serving_dir(task, tracking_uri) / f"v{version}"
    with using_uri(tracking_uri):
        student = load_specialist(task, version)
        tags = mlflow.MlflowClient().get_model_version(model_name(task), version).tags
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if student.architecture == "ngram":
        from fmops_pipelines.specialist.ngram_scorer import NgramScorer

        NgramScorer.export(student, tmp / MODEL_DIR)
    else:
        student.save(tmp / MODEL_DIR)
    info = {"task": task, "model": model_name(task), "version": str(version), "architecture": student.architecture,
            "labels": list(student.cfg.labels), "label_model": tags.get(TAG_LABEL_MODEL, "unknown"),
            "labelers_fingerprint": tags.get(TAG_FINGERPRINT, "unknown"),
            "reference": json.loads(tags[TAG_REFERENCE]) if TAG_REFERENCE in tags else None,
            "fm_texts_per_s": float(tags[TAG_FM_RATE]) if TAG_FM_RATE in tags else None}
    (tmp / BUNDLE_FILE).write_text(json.dumps(info, indent=2))
    try:
        os.replace(tmp, target)
    except OSError:  # another process exported the same version first: theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_bundle(task: str, version: str | None = None, tracking_uri: str | None = None) -> Bundle:
    """The bundle of `version`, or of the current champion; exported from the registry on first use."""
    uri = tracking_uri or paths.mlflow_tracking_uri()
    version = version or alias_version(uri, model_name(task), "champion")
    if version is None:
        raise StateError(f"{task}: no champion model yet; run `fmops run {task}` first")
    directory = serving_dir(task, uri) / f"v{version}"
    if not (directory / BUNDLE_FILE).is_file():
        export_bundle(task, version, uri)
    return Bundle(directory, json.loads((directory / BUNDLE_FILE).read_text()))
