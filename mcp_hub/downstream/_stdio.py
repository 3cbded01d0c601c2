"""The stdio client transport, with a bounded line reader (threat T32).

The SDK's `stdio_client` decodes the child's stdout as text and joins each chunk onto the unfinished line: a 100 MB
line (or one that never ends) is buffered whole, in quadratic time, and one line of invalid UTF-8 ends its reader
task while the session carries on, so every later call times out. This transport spawns and stops the child exactly
as the SDK does (its process helpers, pinned SDK version `mcp==2.3.0`), but reads stdout as bytes:

- a line longer than `max_line_bytes` is not buffered past the cap: the transport stops reading, reports the
  connection broken (`on_broken`) and ends; there is no telling which request a cut line answered, so the connection
  cannot be resynchronised and the owner reconnects;
- a line that is not UTF-8, or not JSON, is broken framing: reported the same way;
- JSON that is not a JSON-RPC message is passed on as an exception value, as the SDK does.

A broken child is killed at once, without the grace period of a clean shutdown (it may be blocked writing the rest
of its line, and would never notice its stdin closing).

The child's stderr is a pipe read into the hub's log (`mcp_hub.downstream.stderr`: one line per line, with the
connector's id, capped, rate-bounded, scrubbed and escaped), to its end: what a child writes as it stops is logged.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel
import mcp_types as types
from anyio.abc import ByteReceiveStream, Process
from mcp.client import stdio as sdk_stdio
from mcp.client._transport import TransportStreams
from mcp.client.stdio import StdioServerParameters, get_default_environment
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from mcp_hub.downstream.lean_stdio import RawLane
from mcp_hub.downstream.stderr import StderrLog, log_stderr

_READ_CHUNK_BYTES = 65536
_STDERR_DRAIN_SECONDS = 1.0
"""How long a stopped child's last stderr lines are waited for (a grandchild may hold the pipe open)."""


class _LineSplitter:
    """Newline-delimited lines from byte chunks, each line at most `limit` bytes (without its newline)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[bytes] = []  # the unfinished line, in pieces (joining per chunk would be quadratic)
        self._size = 0

    def feed(self, chunk: bytes) -> tuple[list[bytes], bool]:
        """The lines `chunk` completes, and whether the unfinished line is now over the limit."""
        lines: list[bytes] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if self._size + end - start > self._limit:
                return lines, True
            self._parts.append(chunk[start:end])
            lines.append(b"".join(self._parts))
            self._parts, self._size = [], 0
            start = end + 1
        rest = len(chunk) - start
        if self._size + rest > self._limit:
            return lines, True
        if rest:
            self._parts.append(chunk[start:])
            self._size += rest
        return lines, False


def _parse_line(line: bytes) -> SessionMessage | Exception | str:
    """A message, a JSON value that is not one (passed on as the SDK does), or what is wrong with the framing."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the downstream wrote a line of invalid UTF-8 on stdout (byte {exc.start})"
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(text, by_name=False))
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            return "the downstream wrote a line that is not JSON on stdout"
        return exc


@asynccontextmanager
async def bounded_stdio_client(
    server: StdioServerParameters,
    *,
    max_line_bytes: int,
    on_broken: Callable[[str], None],
    stderr: StderrLog,
    lane: RawLane | None = None,
) -> AsyncGenerator[TransportStreams]:
    """Spawn the server and exchange newline-delimited JSON-RPC with it; `on_broken(reason)` once if its output
    breaks the framing (then the read stream ends); its stderr goes to `stderr`. A `lane` gets the lines that
    concern its own requests first (`mcp_hub.downstream.lean_stdio`)."""
    command = await sdk_stdio._get_executable_command(server.command)  # pyright: ignore[reportPrivateUsage]
    process = await sdk_stdio._create_platform_compatible_process(  # pyright: ignore[reportPrivateUsage]
        command=command,
        args=server.args,
        env=get_default_environment() | (server.env or {}),
        errlog=subprocess.PIPE,  # pyright: ignore[reportArgumentType] - anyio.open_process takes a PIPE too
        cwd=server.cwd,
    )
    # No awaits until the task group is entered, or a cancellation delivered in the gap would leak the process.
    read_stream_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_stream_reader = anyio.create_memory_object_stream[SessionMessage](0)
    broken = False
    writer_done = anyio.Event()
    stderr_done = anyio.Event()
    stderr_pipe = process.stderr if isinstance(process, Process) else None  # None: Windows' fallback process
    write_lock = lane.write_lock if lane is not None else anyio.Lock()
    if lane is not None and process.stdin is not None:
        lane.attach(process.stdin)

    def framing_broken(reason: str) -> None:
        nonlocal broken
        broken = True
        on_broken(reason)

    async def read_messages(stdout: ByteReceiveStream) -> bool:
        """Deliver the child's messages until its output ends or breaks (False) or the session is gone (True)."""
        lines = _LineSplitter(max_line_bytes)
        while True:
            try:
                chunk = await stdout.receive(_READ_CHUNK_BYTES)
            except anyio.EndOfStream:
                return False
            complete, overflow = lines.feed(chunk)
            for line in complete:
                if not line.strip() or (lane is not None and await lane.take(line)):
                    continue
                message = _parse_line(line)
                if isinstance(message, str):
                    framing_broken(message)
                    return False
                try:
                    await read_stream_writer.send(message)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return True
            if overflow:
                framing_broken(f"the downstream wrote a line longer than {max_line_bytes} bytes on stdout")
                return False

    async def stdout_reader() -> None:
        stdout = process.stdout
        if stdout is None:  # pragma: no cover - spawned with pipes
            raise RuntimeError("the server process has no stdout")
        try:
            async with read_stream_writer:
                try:
                    session_gone = await read_messages(stdout)
                finally:
                    if lane is not None:
                        lane.end("the downstream closed the connection")
            # A clean shutdown reads (and drops) what the child still writes, so it is never blocked on a full
            # pipe and misses its chance to exit (a broken child is never read again: it is killed).
            while session_gone:
                await stdout.receive(_READ_CHUNK_BYTES)
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, ConnectionError, OSError):
            return  # the child went away, or our own shutdown closed the pipe under the read

    async def stderr_reader() -> None:
        try:
            if stderr_pipe is not None:
                await log_stderr(stderr_pipe, stderr)
        finally:
            stderr_done.set()

    async def stdin_writer() -> None:
        stdin = process.stdin
        if stdin is None:  # pragma: no cover - spawned with pipes
            raise RuntimeError("the server process has no stdin")
        try:
            async with write_stream_reader:
                async for session_message in write_stream_reader:
                    json = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    async with write_lock:
                        await stdin.send((json + "\n").encode())
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            # The server may still be alive: end the read stream so the session sees the connection end.
            await read_stream_writer.aclose()
        finally:
            writer_done.set()

    async def shutdown() -> None:
        read_stream.close()
        write_stream.close()
        with anyio.move_on_after(0.5):
            await writer_done.wait()
        if broken:
            await sdk_stdio._terminate_process_tree(process)  # pyright: ignore[reportPrivateUsage]
        await sdk_stdio._stop_server_process(process)  # pyright: ignore[reportPrivateUsage]
        with anyio.move_on_after(_STDERR_DRAIN_SECONDS):
            await stderr_done.wait()
        if stderr_pipe is not None:
            await stderr_pipe.aclose()
        for stream in (read_stream, write_stream, read_stream_writer, write_stream_reader):
            await stream.aclose()
        await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(stdout_reader)
        tasks.start_soon(stdin_writer)
        tasks.start_soon(stderr_reader)
        try:
            yield read_stream, write_stream
        finally:
            # Shielded and bounded: the child must be stopped even when the owner is cancelled.
            with anyio.CancelScope(shield=True):
                await shutdown()
            tasks.cancel_scope.cancel()
