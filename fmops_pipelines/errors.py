"""User-facing errors: one line that names the file, field or row and the reason.

The CLI prints these without a traceback and exits 2; anything else is a bug and keeps its traceback.
"""


class FmopsError(Exception):
    """A problem with the user's input (spec, data, state), explained in one line."""


class SpecError(FmopsError):
    """A task spec is missing, unreadable or invalid."""


class DataError(FmopsError):
    """A dataset is missing, corrupt, or does not match its spec."""


class StateError(FmopsError):
    """Something the command needs has not been produced yet (e.g. no trained model)."""


class EnvironmentProblem(FmopsError):
    """A configured store or service needs something this installation lacks (a driver, a folder)."""


# optional drivers -> the pip extra of fmops that installs them
DRIVER_EXTRAS = {"psycopg2": "postgres", "psycopg": "postgres", "dagster_postgres": "postgres",
                 "dagster_celery": "celery", "celery": "celery", "redis": "celery"}


def missing_driver(exc: BaseException) -> str | None:
    """One line for an exception (anywhere in its chain) caused by a missing optional driver, else None.
    Dagster reports a storage class it cannot import as a CheckError naming the module."""
    import re

    for link in _chain(exc):
        name = link.name if isinstance(link, ModuleNotFoundError) else None
        found = name or next(iter(re.findall(r"(?:No module named|Couldn't import module) '?([\w.]+)", str(link))),
                             None)
        root = (found or "").split(".")[0]
        if root in DRIVER_EXTRAS:
            return (f"the configured store needs the '{root}' driver, which is not installed: "
                    f"pip install 'fmops[{DRIVER_EXTRAS[root]}]' (or .[{DRIVER_EXTRAS[root]}] in a checkout)")
    return None


def _chain(exc: BaseException | None):
    """The exception and its causes / contexts, each once."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def store_problem_of(exc: BaseException) -> str | None:
    """store_problem for a raised exception: the first link of its chain that a store's code raised."""
    import traceback

    stack = "".join(traceback.format_exception(exc))
    return next(filter(None, (store_problem(type(link).__name__, str(link), stack) for link in _chain(exc))), None)


# DB-API error classes (SQLAlchemy's, psycopg's, psycopg2's share the names) for a server that cannot be reached,
# refuses the connection or the credentials; HTTP clients' for a tracking server that is down
_UNREACHABLE = {"OperationalError", "InterfaceError", "ConnectionError", "ConnectionRefusedError",
                "MaxRetryError", "NewConnectionError"}


def store_problem(cls_name: str, message: str, stack: str) -> str | None:
    """One line naming the store and the cause for a failure to reach the tracking store or the Dagster instance's
    storage (`stack`: the failure's traceback text, which says whose code was connecting), else None."""
    import re

    store = _store_named(stack)
    if store is None:  # not a store's code that failed (an FM endpoint's connection error is the FM's own fault)
        return None
    if cls_name == "ModuleNotFoundError" and "sqlalchemy" in stack:
        module = next(iter(re.findall(r"No module named '?([\w.]+)", message)), message)
        return missing_driver(ModuleNotFoundError(message, name=module)) or f"{store} needs the '{module}' driver, " \
                                                                            "which is not installed"
    if cls_name not in _UNREACHABLE and not (cls_name == "MlflowException" and "API request to" in message):
        return None
    return f"{store} cannot be reached: {cause_line(message) or cls_name}"


def _store_named(stack: str) -> str | None:
    """Whose storage the traceback was in: the Dagster instance's, MLflow's, or neither (None)."""
    import os
    from pathlib import Path

    from fmops_pipelines import paths

    if "dagster_postgres" in stack or "dagster/_core/storage" in stack:
        home = Path(os.environ.get("DAGSTER_HOME") or paths.dagster_home())
        return f"the Dagster instance's storage (configured in {home / 'dagster.yaml'})"
    if "/mlflow/" in stack:
        return f"the MLflow tracking store {redact(paths.mlflow_tracking_uri())}"
    return None


def cause_line(message: str) -> str:
    """A driver error's first line without SQLAlchemy's '(psycopg2.OperationalError) ' prefix."""
    import re

    text = message.strip()
    return re.sub(r"^\([\w.]+\)\s*", "", text.splitlines()[0]) if text else ""


def redact(uri: str) -> str:
    """The URI without its password."""
    import re

    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", uri)
