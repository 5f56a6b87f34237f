"""The specialist as an MLflow pyfunc model: log, register, load by version or alias, predict.

Imported only inside asset bodies and CLI commands (MLflow is a heavy import).
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd

from fmops_pipelines.specialist.registry_names import model_name
from fmops_pipelines.specialist.student import Student

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")


def predict_frame(model: Student, texts: list[str], batch_size: int | None = None) -> pd.DataFrame:
    probs = model.predict_proba(texts, batch_size)
    labels = model.cfg.labels
    out = pd.DataFrame({"label": [labels[i] for i in probs.argmax(axis=1)]})
    for i, name in enumerate(labels):
        out[f"p_{name}"] = probs[:, i]
    return out


def _pip_requirements(model: Student) -> list[str]:
    """Pinned explicitly so MLflow skips its slow requirement inference."""
    torch_version = version("torch").split("+")[0]
    pins = [f"torch=={torch_version}", f"scikit-learn=={version('scikit-learn')}", f"pandas=={version('pandas')}",
            f"scipy=={version('scipy')}", f"mlflow=={version('mlflow')}"]
    if model.architecture == "encoder":
        pins += [f"transformers=={version('transformers')}", f"tokenizers=={version('tokenizers')}"]
    return pins


@contextmanager
def _quiet_registry() -> Iterator[None]:
    """MLflow prints "Successfully registered model" / "Created version" to stderr, in the middle of the
    run's progress lines; they go to the `mlflow` logger (the run's log) instead."""
    buffer = io.StringIO()
    try:
        with redirect_stderr(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                logging.getLogger("mlflow").info(line)


def log_and_register(model: Student, task: str, example_texts: list[str], tags: dict[str, str]) -> dict:
    """Log into the active MLflow run and register a new version; returns name, version, URIs and MLflow 3's
    LoggedModel id (metrics logged with it show on the model's page in MLflow)."""
    with tempfile.TemporaryDirectory() as tmp, _quiet_registry():
        model.save(Path(tmp) / "specialist")
        info = mlflow.pyfunc.log_model(
            name="specialist",
            python_model=str(PYFUNC_FILE),  # models-from-code: no pickled Python object in the registry
            artifacts={"specialist": str(Path(tmp) / "specialist")},
            input_example=pd.DataFrame({"text": example_texts[:3]}),
            pip_requirements=_pip_requirements(model),
            registered_model_name=model_name(task),
        )
    version_ = str(info.registered_model_version)
    tag_version(task, version_, tags)
    return {"name": model_name(task), "version": version_, "model_uri": info.model_uri,
            "model_id": info.model_id, "run_id": mlflow.active_run().info.run_id}


def tag_version(task: str, version_: str, tags: dict[str, str]) -> None:
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(model_name(task), version_, key, value)


def load_specialist(task: str, version_or_alias: str) -> Student:
    """The registered specialist by version ('3') or alias ('champion'), as our own model object."""
    sep = "@" if not version_or_alias.isdigit() else "/"
    pyfunc = mlflow.pyfunc.load_model(f"models:/{model_name(task)}{sep}{version_or_alias}")
    return pyfunc.unwrap_python_model().model


def set_champion(task: str, version_: str) -> str | None:
    """Point `champion` at this version; the version it replaces keeps a `previous` alias."""
    client = mlflow.MlflowClient()
    name = model_name(task)
    try:
        old = client.get_model_version_by_alias(name, "champion").version
    except mlflow.exceptions.MlflowException:
        old = None
    if old is not None and str(old) != str(version_):
        client.set_registered_model_alias(name, "previous", str(old))
    client.set_registered_model_alias(name, "champion", str(version_))
    return str(old) if old is not None else None


def alias_version(task: str, alias: str) -> str | None:
    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(model_name(task), alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def champion_version(task: str) -> str | None:
    return alias_version(task, "champion")


def promote(task: str, version_: str) -> str | None:
    """Explicitly make a registered version the champion; returns the version it replaced."""
    from fmops_pipelines.errors import StateError

    try:
        mlflow.MlflowClient().get_model_version(model_name(task), str(version_))
    except mlflow.exceptions.MlflowException:
        raise StateError(f"{model_name(task)}: no registered version '{version_}'") from None
    return set_champion(task, str(version_))


def rollback(task: str) -> tuple[str, str]:
    """Give `champion` back to the `previous` version; returns (restored, demoted). Running it again undoes it."""
    from fmops_pipelines.errors import StateError

    previous, current = alias_version(task, "previous"), champion_version(task)
    if previous is None or current is None:
        raise StateError(f"{model_name(task)}: no previous champion to roll back to")
    set_champion(task, previous)
    return previous, current
