"""Each integration module starts on its own empty FMOPS_HOME (the session's FM cache still shared): under
pytest-xdist a worker runs modules in no fixed order, and a module's runs must not find another's champion,
sensor cursors or gold store."""

import os

import pytest


@pytest.fixture(scope="module", autouse=True)
def _module_home(tmp_path_factory):
    before = os.environ["FMOPS_HOME"]
    os.environ["FMOPS_HOME"] = str(tmp_path_factory.mktemp("module_home"))
    yield
    os.environ["FMOPS_HOME"] = before
