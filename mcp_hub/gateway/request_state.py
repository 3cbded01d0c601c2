"""The `requestState` the hub hands to 2026-07-28 clients: sealed, bound, short-lived and single use.

MCP 2026-07-28 multi-round-trip requests (https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/mrtr,
SEP-2322): a `tools/call`, `prompts/get` or `resources/read` may answer `input_required` with `requestState`,
which the client echoes on its retry. The client controls what it echoes, so the state is sealed by the SDK's
`RequestStateBoundary` (AES-256-GCM, bound to the method, the tool, prompt or URI, a digest of the arguments, the
principal and the hub's resource URL, expiring after `questions.answer_seconds`). The key is shared by every
replica through the database (`SealingStore`), so any replica can open what another sealed. Inside the seal the
hub keeps a random id, recorded when the state is used: a replayed state is refused on every replica.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from mcp.server.context import ServerRequestContext
from mcp.server.request_state import (
    AESGCMRequestStateCodec,
    InvalidRequestState,
    RequestStateBoundary,
    RequestStateSecurity,
)

from mcp_hub.db.sealing import SealingStore
from mcp_hub.domain import Clock, utc_now
from mcp_hub.errors import InvalidInputError

SECRET_NAME: Final = "request-state-v1"  # noqa: S105 - the name of a stored secret, not a secret


class SharedKeyCodec:
    """The SDK's AES-GCM codec over the key every replica shares (loaded by `running()`)."""

    def __init__(self, store: SealingStore) -> None:
        self._store = store
        self._codec: AESGCMRequestStateCodec | None = None

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[SharedKeyCodec]:
        self._codec = AESGCMRequestStateCodec([await self._store.shared_secret(SECRET_NAME)])
        yield self

    def seal(self, payload: bytes) -> str:
        if self._codec is None:
            raise RuntimeError("the request-state key is not loaded: use running()")
        return self._codec.seal(payload)

    def unseal(self, token: str) -> bytes:
        if self._codec is None:
            raise InvalidRequestState("no key")
        return self._codec.unseal(token)


@dataclass(frozen=True, slots=True)
class HubState:
    """What the hub keeps inside a sealed `requestState`."""

    nonce: str
    exchange: str | None = None
    """A request of this replica that waits for the answer (a 2025-11-25 downstream asked mid-call)."""
    downstream_state: str | None = None
    """The downstream's own `requestState` (a 2026-07-28 downstream answered `input_required`)."""

    def dumps(self) -> str:
        return json.dumps({"n": self.nonce, "x": self.exchange, "d": self.downstream_state}, separators=(",", ":"))


class RequestStates:
    """Mints and redeems the hub's `requestState` plaintexts; the boundary seals and opens them."""

    def __init__(self, store: SealingStore, *, ttl_seconds: float, clock: Clock = utc_now) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._clock = clock
        self.codec = SharedKeyCodec(store)

    def boundary(self, audience: str, principal: Callable[[ServerRequestContext[Any, Any]], str | None]) -> Any:
        """The server middleware that seals outgoing and opens incoming states, bound to `principal`."""
        security = RequestStateSecurity(codec=self.codec, ttl=self._ttl, bind_principal=principal, audience=audience)
        return RequestStateBoundary(security, default_audience=audience)

    @staticmethod
    def mint(*, exchange: str | None = None, downstream_state: str | None = None) -> str:
        return HubState(secrets.token_urlsafe(16), exchange, downstream_state).dumps()

    async def redeem(self, plaintext: object) -> HubState:
        """The state a retry carried (already opened and checked by the boundary), used up now.

        `InvalidInputError` for a state that is not the hub's or was used before (a replay).
        """
        try:
            raw: Any = json.loads(plaintext) if isinstance(plaintext, str) else None
            state = HubState(str(raw["n"]), raw.get("x"), raw.get("d"))
        except (ValueError, KeyError, TypeError):
            raise InvalidInputError("Invalid or expired requestState") from None
        if not await self._store.use_request_state_once(state.nonce, self._clock() + timedelta(seconds=self._ttl)):
            raise InvalidInputError("Invalid or expired requestState: it was used before")
        return state
