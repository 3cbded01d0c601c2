"""Connecting to a host name with several addresses: Happy Eyeballs (RFC 8305, https://www.rfc-editor.org/rfc/rfc8305).

The lean client's transport (`mcp_hub.downstream.http1`) connects to a downstream's name here, and the SDK path's
httpx2 through anyio's `connect_tcp`, which does the same: the addresses in the resolver's order (RFC 6724), the
address families taking turns from the first one's (§4), a new attempt started when the one before it has failed or
has not connected within 250 ms (§5, the recommended Connection Attempt Delay, anyio's), the first to connect kept
and the others given up. asyncio's `create_connection(happy_eyeballs_delay=...)` does it too, but uvloop's, which
the hub runs on, takes no such argument; this works on both loops (`loop.sock_connect`).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from typing import Final

import anyio

ATTEMPT_DELAY: Final = 0.25
"""Seconds before the next address is tried while the one before it has neither connected nor failed (RFC 8305 §5)."""

AddressInfo = tuple[
    socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]
]
"""One of `getaddrinfo`'s answers: family, type, protocol, canonical name, socket address."""


async def first_to_connect(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A connected TCP socket to the first of `host`'s addresses to answer; the first failure to arrive (an
    OSError) if none connects (a `socket.gaierror` if the name has no address)."""
    infos: list[AddressInfo] = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise socket.gaierror(socket.EAI_NONAME, f"no address for {host!r}")
    if len(infos) == 1:
        return await _attempt(loop, infos[0])
    connected: list[socket.socket] = []
    failures: list[OSError] = []

    async def attempt(info: AddressInfo, ended: anyio.Event) -> None:
        try:
            sock = await _attempt(loop, info)
        except OSError as exc:
            failures.append(exc)
        else:
            connected.append(sock)
            attempts.cancel_scope.cancel()  # the others are given up, their sockets closed
        finally:
            ended.set()

    try:
        async with anyio.create_task_group() as attempts:
            for info in _interleaved(infos):
                ended = anyio.Event()
                attempts.start_soon(attempt, info, ended)
                with anyio.move_on_after(ATTEMPT_DELAY):
                    await ended.wait()
    except BaseException:  # cancelled from outside (the connect timeout) after one had connected
        for sock in connected:
            sock.close()
        raise
    if not connected:
        raise failures[0]
    for sock in connected[1:]:  # connected in the same turn of the loop as the first
        sock.close()
    return connected[0]


def _interleaved(infos: list[AddressInfo]) -> list[AddressInfo]:
    """The addresses in the resolver's order, the families taking turns from the first one's (RFC 8305 §4)."""
    by_family: dict[socket.AddressFamily, list[AddressInfo]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    return [info for turn in itertools.zip_longest(*by_family.values()) for info in turn if info is not None]


async def _attempt(loop: asyncio.AbstractEventLoop, info: AddressInfo) -> socket.socket:
    family, kind, protocol, _, address = info
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, address)
    except BaseException:  # refused, unreachable, or given up (cancelled)
        sock.close()
        raise
    return sock
