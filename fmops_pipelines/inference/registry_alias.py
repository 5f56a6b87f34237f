"""Which version an MLflow registry alias points at, answered without importing MLflow where possible.

`fmops predict` must start in a couple of seconds, and importing MLflow alone takes ~1.6 s. The two
stores fmops sets up are read directly: a SQLite store through its `registered_model_aliases` table, an
MLflow server through its REST API. Anything else (or a schema this code does not know) goes through
MlflowClient, which is always correct, only slower.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.error
import urllib.parse
import urllib.request

_NOT_FOUND = object()


def _from_sqlite(uri: str, name: str, alias: str):
    path = uri.removeprefix("sqlite:///")
    if not os.path.exists(path):
        return None  # no store, so no registered model and no alias
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                              (name, alias)).fetchall()
    except sqlite3.Error:
        return _NOT_FOUND  # no such file or table yet: let MLflow say so
    if len(rows) > 1:  # several workspaces hold the name: only MLflow knows which one is ours
        return _NOT_FOUND
    return str(rows[0][0]) if rows else None


def _from_server(uri: str, name: str, alias: str):
    query = urllib.parse.urlencode({"name": name, "alias": alias})
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/api/2.0/mlflow/registered-models/alias?{query}",
                                    timeout=10) as response:
            return str(json.load(response)["model_version"]["version"])
    except urllib.error.HTTPError as exc:
        return None if exc.code == 404 else _NOT_FOUND
    except (urllib.error.URLError, KeyError, ValueError, OSError):
        return _NOT_FOUND


def alias_version(tracking_uri: str, name: str, alias: str) -> str | None:
    if tracking_uri.startswith("sqlite:///"):
        found = _from_sqlite(tracking_uri, name, alias)
    elif tracking_uri.startswith(("http://", "https://")):
        found = _from_server(tracking_uri, name, alias)
    else:
        found = _NOT_FOUND
    if found is not _NOT_FOUND:
        return found
    import mlflow

    try:
        return str(mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
                   .get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None
