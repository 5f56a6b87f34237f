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

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = exc.name if isinstance(exc, ModuleNotFoundError) else None
        found = name or next(iter(re.findall(r"(?:No module named|Couldn't import module) '?([\w.]+)", str(exc))), None)
        root = (found or "").split(".")[0]
        if root in DRIVER_EXTRAS:
            return (f"the configured store needs the '{root}' driver, which is not installed: "
                    f"pip install 'fmops[{DRIVER_EXTRAS[root]}]' (or .[{DRIVER_EXTRAS[root]}] in a checkout)")
        exc = exc.__cause__ or exc.__context__
    return None
