"""Names in the MLflow model registry, importable without importing MLflow."""


def model_name(task: str) -> str:
    return f"{task}-specialist"
