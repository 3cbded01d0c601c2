"""How the lean client reaches a downstream by its name, and where it follows it, is the SDK path's.

The lean client (`mcp_hub.downstream.lean_http` over `mcp_hub.downstream.http1`) and the MCP SDK's client over httpx2
(as the hub's SDK path sends a request: `send_raw_request`) each make one 2026-07-28 call to the same raw servers
(`tests.test_http1.ScriptedServer`): a host name that is not ASCII (IDNA 2008, RFC 5891), a name with an IPv6 and
an IPv4 address of which one does not answer (RFC 8305), a redirect from `http` to `https` on the same host (RFC
9110 §15.4). Each runs in a child process with a network and an /etc/hosts of its own (`tests.isolated_net`): the
names resolve through the C library as any other, and the default ports 80 and 443 are free. The SDK's behaviour is
the reference; mandated by the RFC where a docstring says so, otherwise the hub's choice.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pytest

from mcp_hub.domain import ConnectorId
from mcp_hub.downstream.http1 import Http1Pool
from mcp_hub.downstream.tls import verifying_context
from tests.isolated_net import run_isolated
from tests.test_http1 import ScriptedServer, self_signed
from tests.test_lean_http_answers import lean_outcome, sdk_outcome

pytestmark = pytest.mark.anyio

RESULT = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 45\r\n\r\n"
    b'{"jsonrpc":"2.0","id":1,"result":{"ok":true}}'
)
"""A result for either client (its id is not the lean client's, which takes the answer on its own POST anyway)."""


def _tls_pair(names: tuple[str, ...]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 and `names`, and a client context that trusts it."""
    with tempfile.TemporaryDirectory() as directory:
        cert_file, key_file = self_signed(Path(directory), *names)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert_file, key_file)
        return server, ssl.create_default_context(cafile=str(cert_file))


CLIENTS = ("sdk", "lean")


async def _outcome(client: str, url: str, tls: ssl.SSLContext | None = None) -> list[Any]:
    """`client`'s outcome of one call (`["result", {...}]`, `["error", code]`), or the exception it raised."""
    try:
        outcome = await (sdk_outcome(url, tls) if client == "sdk" else lean_outcome(url, tls))
    except Exception as exc:  # noqa: BLE001 - reported to the test in the parent process, which names it
        return ["raised", type(exc).__name__]
    return list(outcome)


def _host_fields(*servers: ScriptedServer) -> list[str]:
    """The Host field of each request the servers saw, without its port."""
    heads = [head for server in servers for connection in server.connections for head in connection.heads]
    lines = [line for head in heads for line in head.decode("latin-1").split("\r\n") if line.startswith("Host:")]
    return [line.rpartition(":")[0] for line in lines]


# --- host names that are not ASCII ----------------------------------------------------------------------------------

IDN_HOSTS = "127.0.0.1 xn--bcher-kva.test xn--strae-oqa.test\n"
"""`bücher.test` and `straße.test` in their A-label form (IDNA 2008); `strasse.test`, the IDNA 2003 form of
the second, is not there."""


async def scenario_idn_hosts() -> dict[str, Any]:
    """Each client's call to each IDN host over http and https: its outcomes, the Host fields and the TLS server
    names the servers saw."""
    server_tls, client_tls = _tls_pair(("xn--bcher-kva.test", "xn--strae-oqa.test"))
    server_names: list[str | None] = []
    server_tls.sni_callback = lambda _socket, name, _context: server_names.append(name)
    seen: dict[str, Any] = {}
    for client in CLIENTS:
        calls: list[Any] = []
        server_names.clear()
        for host in ("bücher.test", "straße.test"):
            async with (
                ScriptedServer([RESULT]).running() as plain,
                ScriptedServer([RESULT], tls=server_tls).running() as secure,
            ):
                outcome = await _outcome(client, f"http://{host}:{plain.port}/mcp")
                secure_outcome = await _outcome(client, f"https://{host}:{secure.port}/mcp", client_tls)
            calls.append([host, outcome, secure_outcome, _host_fields(plain, secure)])
        seen[client] = [calls, list(server_names)]
    return seen


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_an_internationalized_host_name_goes_in_its_idna_2008_form(loop: str, tmp_path: Path) -> None:
    """RFC 9110 §7.2 and RFC 6066 §3 (the Host field and the TLS server name are ASCII), RFC 5891 (IDNA 2008: an
    A-label, `straße` is not `strasse`); the SDK path's client (httpx2, the `idna` package) encodes the name so,
    and the lean client does the same, for the lookup, the Host field, the server name and the certificate's
    check."""
    seen = await run_isolated("tests.test_lean_reach:scenario_idn_hosts", IDN_HOSTS, tmp_path, loop=loop)
    ok = ["result", {"ok": True}]
    expected = [
        [
            ["bücher.test", ok, ok, ["Host: xn--bcher-kva.test"] * 2],
            ["straße.test", ok, ok, ["Host: xn--strae-oqa.test"] * 2],
        ],
        ["xn--bcher-kva.test", "xn--strae-oqa.test"],
    ]
    assert seen == {"sdk": expected, "lean": expected}


async def test_a_host_name_without_an_idna_form_is_refused_with_its_reason() -> None:
    """RFC 5891 §4 (a label with a disallowed code point has no A-label); our choice of error: the pool is not
    made (as httpx2 refuses the URL: `Invalid IDNA hostname`), and the error names the host and why."""
    with pytest.raises(
        ValueError, match=r"connector 'snow': the host name 'snow☃man.test' has no IDNA 2008 form \(.*not allowed"
    ):
        Http1Pool(ConnectorId("snow"), "http://snow☃man.test/mcp", tls=verifying_context(), connect_timeout=5)


# --- a name with several addresses ------------------------------------------------------------------------------------

DUAL_HOSTS = "::1 dual.test\n127.0.0.1 dual.test\n"
"""A name with an IPv6 and an IPv4 address; the resolver gives ::1 first (RFC 6724)."""


async def scenario_dual_stack() -> dict[str, Any]:
    """Each client's call to `dual.test` whose server listens on 127.0.0.1 only, while ::1 is silent (its
    connection attempts are never answered: a listener whose backlog is full drops them) or refuses (nothing
    listens there); then to a port that both refuse."""
    seen: dict[str, Any] = {client: [] for client in CLIENTS}
    for silent in (True, False):
        async with ScriptedServer([RESULT, RESULT]).running() as server:
            with socket.socket(socket.AF_INET6) as v6, socket.socket(socket.AF_INET6) as queued:
                if silent:
                    v6.bind(("::1", server.port))
                    v6.listen(0)
                    queued.connect(("::1", server.port))  # fills the backlog of 0 (+1): no answer to the next
                for client in CLIENTS:
                    seen[client].append(await _outcome(client, f"http://dual.test:{server.port}/mcp"))
    with socket.socket() as unused:  # a port nobody listens on, at either address
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    for client in CLIENTS:
        seen[client].append(await _outcome(client, f"http://dual.test:{port}/mcp"))
    return seen


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_a_name_is_reached_on_whichever_of_its_addresses_answers(loop: str, tmp_path: Path) -> None:
    """Threat T25 (a silent address does not hang the connector), RFC 8305 (Happy Eyeballs: the next address is
    tried 250 ms after the first when that one has not answered yet, at once when it refuses); the SDK path's
    client (anyio's `connect_tcp`) does so, and the lean client does the same, on both event loops the hub runs
    on (asyncio's own `happy_eyeballs_delay` is not uvloop's). When every address refuses, the connector is
    unreachable (the SDK's client raises its own error, which the hub maps elsewhere)."""
    seen = await run_isolated("tests.test_lean_reach:scenario_dual_stack", DUAL_HOSTS, tmp_path, loop=loop)
    ok = ["result", {"ok": True}]
    assert seen["lean"] == [ok, ok, ["raised", "DownstreamUnreachableError"]]
    assert seen["sdk"][:2] == [ok, ok]
    assert seen["sdk"][2][0] == "raised"


# --- a redirect to https ----------------------------------------------------------------------------------------------

UPGRADE_HOSTS = "127.0.0.1 peer.test\n"
"""Another name of the same address: another host, so another origin."""


def _redirect(status: str, location: str) -> bytes:
    return f"HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()


UPGRADES: dict[str, tuple[str, list[bytes], list[bytes]]] = {
    # name: the connector's URL, the answers of the server on port 80 (http), of the one on 443 (https)
    "307-to-https": (
        "http://hub:s3cret@127.0.0.1/mcp",
        [_redirect("307 Temporary Redirect", "https://127.0.0.1/mcp")],
        [RESULT],
    ),
    "308-to-https-then-307-within-it": (
        "http://127.0.0.1:80/mcp",
        [_redirect("308 Permanent Redirect", "https://127.0.0.1:443/mcp")],
        [_redirect("307 Temporary Redirect", "/mcp/"), RESULT],
    ),
    "307-to-https-on-another-port": (
        "http://127.0.0.1/mcp",
        [_redirect("307 Temporary Redirect", "https://127.0.0.1:8443/mcp")],
        [],
    ),
    "307-to-https-on-another-host": (
        "http://hub:s3cret@127.0.0.1/mcp",
        [_redirect("307 Temporary Redirect", "https://peer.test/mcp")],
        [],
    ),
    "302-to-https": ("http://127.0.0.1/mcp", [_redirect("302 Found", "https://127.0.0.1/mcp")], []),
    "307-to-https-bringing-credentials": (
        "http://127.0.0.1/mcp",
        [_redirect("307 Temporary Redirect", "https://who:pw@127.0.0.1/mcp")],
        [],
    ),
    "307-from-https-to-http": (
        "https://hub:s3cret@127.0.0.1/mcp",
        [],
        [_redirect("307 Temporary Redirect", "http://127.0.0.1/mcp")],
    ),
    "307-to-https-then-back-to-http": (
        "http://hub:s3cret@127.0.0.1/mcp",
        [_redirect("307 Temporary Redirect", "https://127.0.0.1/mcp"), RESULT],
        [_redirect("307 Temporary Redirect", "http://127.0.0.1/mcp")],
    ),
}


def _requests(server: ScriptedServer) -> list[list[str]]:
    """The port, target, Host field and Authorization field (or "") of each request `server` saw."""
    seen: list[list[str]] = []
    for head in (head for connection in server.connections for head in connection.heads):
        lines = head.decode("latin-1").split("\r\n")
        seen.append([str(server.port), lines[0].split(" ")[1], _field(lines, "host"), _field(lines, "authorization")])
    return seen


def _field(lines: list[str], name: str) -> str:
    """The value of the field `name` (lower case) among a request head's `lines`, or ""."""
    return next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith(f"{name}:")), "")


async def scenario_https_upgrades() -> dict[str, Any]:
    """Each client's call in each case of `UPGRADES`: its outcome, and the requests each server saw."""
    server_tls, client_tls = _tls_pair(("peer.test",))
    seen: dict[str, Any] = {}
    for case, (url, plain_answers, secure_answers) in UPGRADES.items():
        for client in CLIENTS:
            async with (
                ScriptedServer(list(plain_answers)).running(port=80) as plain,
                ScriptedServer(list(secure_answers), tls=server_tls).running(port=443) as secure,
            ):
                outcome = await _outcome(client, url, client_tls)
            seen[f"{case} {client}"] = [outcome, _requests(plain) + _requests(secure)]
    return seen


async def test_a_redirect_to_https_on_the_same_host_is_followed_as_on_the_sdk_path(tmp_path: Path) -> None:
    """Threat T11 (a redirect is checked before it is followed; the connector's credentials go nowhere else), RFC
    9110 §15.4.8, §15.4.9 (307 and 308 keep the method and body): the SDK path follows a redirect within the
    origin of the request it sent and, besides, from an `http` URL on port 80 to `https` on 443 of the same host
    (`mcp.shared._httpx_utils._within_origin`, httpx2's `_is_https_redirect`), which keeps the connector's
    credentials (its Authorization field: httpx2 drops it only when it leaves the origin otherwise); never to
    another port or host, never from https to http, never a 302, never one bringing credentials of its own. The
    lean client follows the same redirects, with the same fields (a Host field without the default port that a URL
    or a Location names: RFC 3986 §6.2.3, as httpx2 writes it), and ends each case as the SDK path does."""
    seen = await run_isolated("tests.test_lean_reach:scenario_https_upgrades", UPGRADE_HOSTS, tmp_path)
    basic = "Basic aHViOnMzY3JldA=="  # hub:s3cret
    ok, not_followed = ["result", {"ok": True}], ["error", -32600]
    host = "127.0.0.1"  # a default port is not written in the Host field, even where the URL names it
    assert seen["307-to-https sdk"] == [ok, [["80", "/mcp", host, basic], ["443", "/mcp", host, basic]]]
    assert seen["308-to-https-then-307-within-it sdk"] == [
        ok,
        [["80", "/mcp", host, ""], ["443", "/mcp", host, ""], ["443", "/mcp/", host, ""]],
    ]
    assert seen["307-to-https-then-back-to-http sdk"] == [
        not_followed,
        [["80", "/mcp", host, basic], ["443", "/mcp", host, basic]],
    ]
    for case in UPGRADES:
        assert seen[f"{case} lean"] == seen[f"{case} sdk"], case
