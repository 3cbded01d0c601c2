"""The TLS context of the hub's connections to downstream servers (RFC 8446 through the standard library's `ssl`).

One context for every connector and both HTTP clients (the SDK client's httpx2 transport and the lean client,
`mcp_hub.downstream.http1`): httpx2's default, the certificate and the host name verified against its CA bundle.
Building it reads the whole bundle, ~25 ms of CPU, which each connector's own transport used to spend again
(2.5 s of a 100-connector start); a context is configuration only, safe to share between connections.
"""

from __future__ import annotations

import functools
import ssl

import httpx2


@functools.cache
def verifying_context() -> ssl.SSLContext:
    """The shared verifying client context (built on first use)."""
    return httpx2.create_ssl_context()
