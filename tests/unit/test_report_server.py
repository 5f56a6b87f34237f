"""The reports server `fmops ui` runs: serves the reports folder and nothing outside it, answers only for
local addresses, and a taken port is one line."""

import socket
import urllib.error
import urllib.request

import pytest

from fmops_pipelines.errors import EnvironmentProblem
from fmops_pipelines.report_server import local_address, serve_reports


def test_local_addresses_are_served_and_others_are_left_to_whoever_publishes_them():
    assert local_address("http://localhost:3030") == ("127.0.0.1", 3030)
    assert local_address("http://127.0.0.1:8080/") == ("127.0.0.1", 8080)
    assert local_address("https://reports.example.com/fmops") is None


def test_serves_the_folder_and_nothing_outside_it(tmp_path):
    (tmp_path / "reports" / "sms_spam").mkdir(parents=True)
    (tmp_path / "reports" / "sms_spam" / "r.html").write_text("<title>report</title>")
    (tmp_path / "secret.txt").write_text("not for the browser")
    server = serve_reports(tmp_path / "reports", "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/sms_spam/r.html", timeout=5) as response:
            assert response.read() == b"<title>report</title>"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{base}/../secret.txt", timeout=5)
    finally:
        server.shutdown()


def test_a_taken_port_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EnvironmentProblem) as err:
            serve_reports(tmp_path, "127.0.0.1", port)
    assert str(err.value) == (f"cannot serve reports on 127.0.0.1:{port} (Address already in use); set "
                              "FMOPS_REPORTS_URL to a free local port, e.g. http://localhost:3031")
