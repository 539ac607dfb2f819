"""The ``docker`` marker: tests that drive a real Docker engine (tests/deploy/run_deploy_test.sh)."""

from __future__ import annotations


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "docker: needs a Docker engine and Compose v2; skipped loudly without them"
    )
