"""A local OpenAI-compatible chat endpoint that misbehaves on purpose, for the FM-fault tests.

It answers "spam" when the question's message mentions free / win / prize, else "ham". A message that
contains a fault marker gets that fault on every try: `FAULT-503` (HTTP 503), `FAULT-SLOW` (no reply before
the client's timeout), `FAULT-CLOSE` (the connection is closed without a reply), `FAULT-JSON` (a 200 whose
body is not JSON), `FAULT-MAYBE` (an answer outside the label set). `FLAKY` fails with 503 twice, then
answers; any path but /v1/chat/completions is a 404. `down_after = n` turns every request after the n-th answered one into a 503 (an endpoint that
goes down); `fault_share = s` gives a stable share s of messages (by hash) a 503 on every try.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

SLOW_S = 1.0


class FaultyEndpoint(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    tries: ClassVar[Counter] = Counter()  # message -> requests seen (reset by serve())
    keys: ClassVar[set] = set()  # the Authorization headers seen
    answered = 0
    down_after: int | None = None
    fault_share = 0.0

    def log_message(self, *args):
        pass

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self):
        cls = type(self)
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": "not found"}')
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls.keys.add(self.headers.get("Authorization"))
        message = body["messages"][0]["content"].split("\n\nAnswer with")[0]
        with cls.lock:
            cls.tries[message] += 1
            tries = cls.tries[message]
            down = cls.down_after is not None and cls.answered >= cls.down_after
            hashed = int(hashlib.sha256(message.encode()).hexdigest()[:8], 16) / 16**8 < cls.fault_share
        if down or hashed or "FAULT-503" in message or ("FLAKY" in message and tries <= 2):
            return self._send(503, b'{"error": "overloaded"}')
        if "FAULT-SLOW" in message:
            time.sleep(SLOW_S)
            return self._send(200, b"{}")
        if "FAULT-CLOSE" in message:
            self.close_connection = True
            return None  # no status line at all: the client sees the connection drop
        if "FAULT-JSON" in message:
            return self._send(200, b'{"choices": [{"message": ')
        words = message.lower()
        answer = "maybe" if "FAULT-MAYBE" in message else (
            "spam" if any(w in words for w in ("free", "win", "prize")) else "ham")
        with cls.lock:
            cls.answered += 1
        self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode())


def serve() -> tuple[ThreadingHTTPServer, str]:
    """A fresh endpoint on a free port (state reset) and its base URL; call .shutdown() when done."""
    FaultyEndpoint.tries, FaultyEndpoint.answered, FaultyEndpoint.keys = Counter(), 0, set()
    FaultyEndpoint.down_after, FaultyEndpoint.fault_share = None, 0.0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FaultyEndpoint)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/v1"
