"""Serves the reports folder (HTML reports and their plots) over HTTP, so the Dagster UI can show plots
inline and open a report with one click: a browser will not follow a file:// link from an http:// page.

`fmops ui` runs it in a thread beside the Dagster processes when FMOPS_REPORTS_URL names this machine.
Read-only, static files, nothing outside the folder (http.server's SimpleHTTPRequestHandler).
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from fmops_pipelines.errors import EnvironmentProblem

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def local_address(url: str) -> tuple[str, int] | None:
    """(host, port) to serve on when the URL names this machine, else None (someone else publishes it)."""
    parts = urlsplit(url)
    if parts.hostname not in LOCAL_HOSTS:
        return None
    return ("127.0.0.1" if parts.hostname == "localhost" else parts.hostname), parts.port or 80


def serve_reports(root: Path, host: str, port: int) -> ThreadingHTTPServer:
    """Start serving `root` in a daemon thread; returns the server (call .shutdown() to stop)."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        server = ThreadingHTTPServer((host, port), functools.partial(_QuietHandler, directory=str(root)))
    except OSError as exc:
        raise EnvironmentProblem(f"cannot serve reports on {host}:{port} ({exc.strerror}); set FMOPS_REPORTS_URL to "
                                 "a free local port, e.g. http://localhost:3031") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="fmops-reports", daemon=True).start()
    return server
