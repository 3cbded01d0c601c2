"""`mcp-hub` commands in child processes forked from one that has imported the command already.

The installed console script spends seconds of CPU importing the MCP SDK, SQLAlchemy and the hub before it does
anything, and the suite runs it a hundred times. Most tests of a command need a process of its own (its own event
loop, database connections, exit code, stdout, stderr and environment, as an operator's run has) but not a fresh
interpreter: here a forkserver (multiprocessing) imports `mcp_hub.cli` once per test process, and every run is a
child forked from it that calls `main(argv)`. The console script itself (its entry point, `serve` and `stdio`
start-up) is still run as installed by tests/test_cli.py, tests/test_stdio_front_door.py and the replica and
deployment tests.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from subprocess import CompletedProcess

import anyio
import anyio.to_thread

_CONTEXT = multiprocessing.get_context("forkserver")
# The forkserver imports these once; `__main__` (multiprocessing's default) would be the test runner's.
_CONTEXT.set_forkserver_preload(["mcp_hub.cli", "tests.cli_process"])
# `Process.start` polls every other child (reading its exit status off its sentinel) while another thread may be
# joining that child: two readers of one status, and the loser sees EOF and reports exit code 255. So starts and
# joins take turns; the waiting itself (sentinel readable) happens outside the lock.
_TURNS = threading.Lock()


def _run_main(argv: list[str], env: dict[str, str], cwd: str | None, stdin: str, stdout: str, stderr: str) -> None:
    """In the forked child: stdio on the given files, the given environment and directory, then `main(argv)`."""
    for fd, path, flags in ((0, stdin, os.O_RDONLY), (1, stdout, os.O_WRONLY), (2, stderr, os.O_WRONLY)):
        opened = os.open(path, flags)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the child's stdin for its whole life
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    sys.argv = ["mcp-hub", *argv]
    from mcp_hub.cli import main

    sys.exit(main(argv))  # multiprocessing flushes stdout and stderr and exits with this code


def _run_to_completion(process: multiprocessing.process.BaseProcess) -> None:
    with _TURNS:
        process.start()
    multiprocessing.connection.wait([process.sentinel])
    with _TURNS:
        process.join()


async def run_cli(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path | None = None,
    within_seconds: float = 120,
) -> CompletedProcess[bytes]:
    """`mcp-hub <argv>` in a forked child, to completion: exit code, stdout and stderr as `anyio.run_process`
    returns them. `stdin` is the child's standard input (empty if None); `env` its whole environment."""
    with tempfile.TemporaryDirectory(prefix="mcp-hub-cli-") as scratch:
        paths = {name: Path(scratch) / name for name in ("stdin", "stdout", "stderr")}
        paths["stdin"].write_text(stdin or "")
        paths["stdout"].touch()
        paths["stderr"].touch()
        process = _CONTEXT.Process(
            target=_run_main,
            args=(
                list(argv),
                dict(os.environ if env is None else env),
                None if cwd is None else str(cwd),
                *(str(paths[name]) for name in ("stdin", "stdout", "stderr")),
            ),
            daemon=True,
        )
        try:
            with anyio.fail_after(within_seconds):
                await anyio.to_thread.run_sync(_run_to_completion, process, abandon_on_cancel=True)
        finally:
            with _TURNS:
                if process.pid is not None and process.exitcode is None:
                    process.kill()
        with _TURNS:
            exit_code = process.exitcode
        assert exit_code is not None
        return CompletedProcess(
            ["mcp-hub", *argv], exit_code, paths["stdout"].read_bytes(), paths["stderr"].read_bytes()
        )
