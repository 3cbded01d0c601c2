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
    directory = Path(tempfile.mkdtemp())
    cert_file, key_file = self_signed(directory, *names)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=str(cert_file))


async def _outcome(client: str, url: str, tls: ssl.SSLContext | None) -> list[Any]:
    """`client`'s outcome of one call (`["result", {...}]`, `["error", code]`), or the exception it raised."""
    try:
        outcome = await (sdk_outcome(url, tls) if client == "sdk" else lean_outcome(url, tls))
    except Exception as exc:  # noqa: BLE001 - reported to the test in the parent process, which names it
        return ["raised", type(exc).__name__]
    return list(outcome)


# --- host names that are not ASCII ----------------------------------------------------------------------------------

IDN_HOSTS = "127.0.0.1 xn--bcher-kva.test xn--strae-oqa.test\n"
"""`bücher.test` and `straße.test` in their A-label form (IDNA 2008); `strasse.test`, the IDNA 2003 form of
the second, is not there."""


async def scenario_idn_hosts(client: str) -> list[Any]:
    """Each IDN host over http and https: the client's outcome, the Host field and the TLS server name seen."""
    server_tls, client_tls = _tls_pair(("xn--bcher-kva.test", "xn--strae-oqa.test"))
    server_names: list[str | None] = []
    server_tls.sni_callback = lambda _socket, name, _context: server_names.append(name)
    seen: list[Any] = []
    for host in ("bücher.test", "straße.test"):
        async with ScriptedServer([RESULT]).running() as plain:
            port = plain.url.split(":")[2].split("/")[0]
            outcome = await _outcome(client, f"http://{host}:{port}/mcp", None)
            heads = [head for connection in plain.connections for head in connection.heads]
        async with ScriptedServer([RESULT], tls=server_tls).running() as secure:
            port = secure.url.split(":")[2].split("/")[0]
            secure_outcome = await _outcome(client, f"https://{host}:{port}/mcp", client_tls)
            heads += [head for connection in secure.connections for head in connection.heads]
        # The Host field's lines, without their (random) port.
        fields = [line for head in heads for line in head.decode("latin-1").split("\r\n") if line.startswith("Host")]
        seen.append([host, outcome, secure_outcome, [line.rpartition(":")[0] for line in fields]])
    return [seen, server_names]


@pytest.mark.parametrize("client", ["sdk", "lean"])
async def test_an_internationalized_host_name_goes_in_its_idna_2008_form(client: str, tmp_path: Path) -> None:
    """RFC 9110 §7.2 and RFC 6066 §3 (the Host field and the TLS server name are ASCII), RFC 5891 (IDNA 2008: an
    A-label, `straße` is not `strasse`); the SDK path's client (httpx2, the `idna` package) encodes the name so,
    and the lean client does the same, for the lookup, the Host field, the server name and the certificate's
    check."""
    seen, server_names = await run_isolated("tests.test_lean_reach:scenario_idn_hosts", IDN_HOSTS, tmp_path, client)
    ok = ["result", {"ok": True}]
    assert seen == [
        ["bücher.test", ok, ok, ["Host: xn--bcher-kva.test"] * 2],
        ["straße.test", ok, ok, ["Host: xn--strae-oqa.test"] * 2],
    ]
    assert server_names == ["xn--bcher-kva.test", "xn--strae-oqa.test"]


async def test_a_host_name_without_an_idna_form_is_refused_with_its_reason() -> None:
    """RFC 5891 §4 (a label with a disallowed code point has no A-label); our choice of error: the pool is not
    made (as httpx2 refuses the URL: `Invalid IDNA hostname`), and the error names the host and why."""
    with pytest.raises(
        ValueError, match=r"connector 'snow': the host name 'snow☃man.test' has no IDNA 2008 form \(.*not allowed"
    ):
        Http1Pool(ConnectorId("snow"), "http://snow☃man.test/mcp", tls=verifying_context(), connect_timeout=5)
