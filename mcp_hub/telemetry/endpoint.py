"""`GET /metrics`: the Prometheus text exposition of one hub's `HubMetrics`, behind a bearer token.

Prometheus sends the token as `Authorization: Bearer <token>` (its `authorization` scrape setting, RFC 6750 §2.1).
The comparison takes the same time whatever the presented token (`hmac.compare_digest` over SHA-256 digests, so
not even the token's length shows). Without a token the endpoint is open: the settings allow that only on a
loopback address (`mcp_hub.config.settings.MetricsSection`). The answer is never cached.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mcp_hub.telemetry.metrics import HubMetrics

_NO_STORE: Final = {"Cache-Control": "no-store"}


class MetricsEndpoint:
    """The `/metrics` route of a hub (on its own listener or on the admin listener)."""

    def __init__(self, metrics: HubMetrics, token: str | None, *, path: str = "/metrics") -> None:
        self._metrics = metrics
        self._token_digest = hashlib.sha256(token.encode()).digest() if token else None
        self._path = path

    def routes(self) -> list[Route]:
        return [Route(self._path, self._scrape, methods=["GET"])]

    def _authorized(self, request: Request) -> bool:
        if self._token_digest is None:
            return True
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        digest = hashlib.sha256(presented.strip().encode()).digest()
        # Both compared whatever the scheme, so a wrong scheme takes as long as a wrong token.
        return hmac.compare_digest(digest, self._token_digest) & (scheme.lower() == "bearer")

    async def _scrape(self, request: Request) -> Response:
        if not self._authorized(request):
            return PlainTextResponse(
                "a valid bearer token is required for /metrics\n",
                status_code=401,
                headers={**_NO_STORE, "WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        body = await self._metrics.exposition()
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers=_NO_STORE)
