"""The features fixture server (`tests/fixtures/features_server.py`) behind three connectors, for the tests of
what passes through the hub besides tools: over stdio (2025-11-25, one shared stream), over HTTP pinned to
2025-11-25 (streams tagged with their request), over HTTP at 2026-07-28."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import PYTHON, connector_toml

FEATURES_SERVER = Path(__file__).parent / "fixtures" / "features_server.py"
CONNECTORS = ["fs-stdio", "fs-legacy", "fs-modern"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def features_over_http(port: int) -> Generator[None]:
    process = subprocess.Popen([sys.executable, str(FEATURES_SERVER), "--http", str(port)])
    try:
        yield
    finally:
        process.kill()
        process.wait()


def features_connectors(port: int) -> dict[str, str]:
    url = f"http://127.0.0.1:{port}/mcp"
    return {
        "fs-stdio": connector_toml(
            id="fs-stdio", transport="stdio", protocol="legacy", command=PYTHON, args=[str(FEATURES_SERVER)]
        ),
        "fs-legacy": connector_toml(id="fs-legacy", transport="http", protocol="legacy", url=url),
        "fs-modern": connector_toml(id="fs-modern", transport="http", protocol="2026-07-28", url=url),
    }
