"""A test's scenario in a child process with a network and host names of its own (Linux namespaces).

Some behaviour of the hub's HTTP clients needs what a test process on a shared machine cannot have: the default
ports 80 and 443 (an `http` URL's redirect to its `https` upgrade), and host names that resolve as the test says
(an internationalized name, a name with an IPv6 and an IPv4 address). `run_isolated` runs an async function of a
test module in a child process in new mount and network namespaces (`unshare`, as root, as CI runs): a loopback
interface of its own (127.0.0.1 and ::1, every port free, no way out) and an /etc/hosts of the test's, read by the
C library's resolver as any other. What the function returns (JSON) is what `run_isolated` returns. Where the
namespaces cannot be made (not root, no `unshare` or `ip`), the test is skipped, saying so (and fails in CI,
which runs as root on a machine that has them).

The child runs `python -m tests.isolated_net MODULE:FUNCTION LOOP ARGUMENTS` (LOOP: `asyncio` or `uvloop`).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

REPO = Path(__file__).resolve().parents[1]
_HOSTS_BASE = "127.0.0.1 localhost\n"
_CHILD_SECONDS = 60


@functools.cache
def _namespaces_missing() -> str | None:
    """Why the namespaces cannot be made here, or None."""
    for command in ("unshare", "ip", "mount"):
        if shutil.which(command) is None:
            return f"no {command} command"
    if os.geteuid() != 0:
        return "not root (unshare --mount --net needs it)"
    probe = subprocess.run(
        ["unshare", "--mount", "--net", "--", "ip", "link", "set", "lo", "up"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return f"unshare --mount --net failed: {probe.stderr.decode(errors='replace').strip()}"
    return None


async def run_isolated(scenario: str, hosts: str, directory: Path, *arguments: object, loop: str = "asyncio") -> Any:
    """Run `scenario` (`module:function`, an async function taking `arguments`) in the child, its /etc/hosts the
    lines `hosts` (after localhost's); its JSON result. The hosts file is written in `directory`."""
    if (missing := _namespaces_missing()) is not None:
        reason = f"no network namespace for this test: {missing}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run it")
        pytest.skip(reason)
    hosts_file = directory / "hosts"
    hosts_file.write_text(_HOSTS_BASE + hosts)
    setup = 'ip link set lo up && mount --bind "$1" /etc/hosts && shift && exec "$@"'
    command = [
        *("unshare", "--mount", "--net", "--", "sh", "-c", setup, "sh", str(hosts_file)),
        *(sys.executable, "-m", "tests.isolated_net", scenario, loop, json.dumps(list(arguments))),
    ]
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    with anyio.fail_after(_CHILD_SECONDS):
        done = await anyio.run_process(command, check=False, env=environment, cwd=REPO)
    if done.returncode != 0:
        raise AssertionError(f"{scenario} failed in its namespace:\n{done.stderr.decode(errors='replace')}")
    return json.loads(done.stdout.decode().splitlines()[-1])


def _main() -> None:
    scenario, loop, arguments = sys.argv[1:]
    module_name, _, function_name = scenario.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = anyio.run(function, *json.loads(arguments), backend_options={"use_uvloop": loop == "uvloop"})
    print(json.dumps(result))


if __name__ == "__main__":
    _main()
