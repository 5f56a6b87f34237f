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
