"""The one decision point: which tools a caller may see and call (threats T09, T10, T27).

A decision comes from the stored grants, read through a short cache (`decision_cache_seconds`, default 2 s):
revoking a grant, disabling an agent or user, revoking a token or its refresh family takes effect within
that bound on every replica, without a database round trip per call. The token's scopes only cap what the
grants allow: a tool is allowed when a grant AND a token scope match its public name. `tools/list` and
`tools/call` both ask `ToolAccess.allows`, so a list never shows what a call would refuse, or the reverse.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

import anyio

from mcp_hub.authz import scopes
from mcp_hub.authz.tokens import AccessToken
from mcp_hub.db.auth_store import AgentRecord, AuthStore, SubjectGrants
from mcp_hub.errors import InvalidTokenError

ValueT = TypeVar("ValueT")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an agent, acting for itself or on a user's behalf, with the token's scope cap."""

    agent_id: str
    agent_name: str
    user_id: str | None = None
    token_scopes: tuple[str, ...] | None = None
    """None: no token (stdio `--agent`), so the grants alone decide."""

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.agent_id, self.user_id)

    @property
    def label(self) -> str:
        """How the audit trail names the caller."""
        return f"agent:{self.agent_name}" + (f" for user:{self.user_id}" if self.user_id else "")


_EVERY_TOOL: Final = "tool:*"
_MAX_REMEMBERED_NAMES: Final = 4096
_MAX_SHARED_DECISIONS: Final = 256


@dataclass(frozen=True, slots=True)
class ToolAccess:
    """A caller's decision, ready for the hot path: pure, synchronous, no I/O."""

    grants: tuple[str, ...]
    token_scopes: tuple[str, ...] | None
    _answers: dict[str, bool] = field(default_factory=dict[str, bool], init=False, repr=False, compare=False)
    """Names already decided: the decider shares one `ToolAccess` per (grants, scopes) while they are cached."""

    @property
    def allows_every_tool(self) -> bool:
        """True when no tool name can be refused (a `tool:*` grant, and no narrower token scope)."""
        return _EVERY_TOOL in self.grants and (self.token_scopes is None or _EVERY_TOOL in self.token_scopes)

    def allows(self, public_name: str) -> bool:
        answer = self._answers.get(public_name)
        if answer is None:
            answer = scopes.any_matches(self.grants, "tool", public_name) and (
                self.token_scopes is None or scopes.any_matches(self.token_scopes, "tool", public_name)
            )
            if len(self._answers) < _MAX_REMEMBERED_NAMES:
                self._answers[public_name] = answer
        return answer


class _Load(Generic[ValueT]):
    """One read of the store in flight, shared by every request that misses the same key meanwhile."""

    __slots__ = ("done", "value")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: ValueT | None = None


class _TtlCache(Generic[ValueT]):
    """A small map whose entries expire after `ttl` seconds (monotonic clock); bounded by `max_entries`.

    `get_or_load` is single-flight: when an entry expires under load, the requests that miss it together
    share one read of the store instead of each making their own (a stampede of identical queries every
    `ttl` seconds). A load that fails or is cancelled caches nothing; its waiters then load for themselves.
    `drop` and `clear` also detach loads already in flight, so a value read before them is never cached.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[object, tuple[float, ValueT]] = {}
        self._loading: dict[object, _Load[ValueT]] = {}

    def get(self, key: object) -> ValueT | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    async def get_or_load(self, key: object, load: Callable[[], Awaitable[ValueT]]) -> ValueT:
        """The cached value, or the one `load()` returns (shared with concurrent misses, then cached)."""
        while True:
            value = self.get(key)
            if value is not None:
                return value
            pending = self._loading.get(key)
            if pending is None:
                break
            await pending.done.wait()
            if pending.value is not None:
                return pending.value
            # The shared load failed or was detached: try again (fail closed: never a guessed value).
        mine = _Load[ValueT]()
        self._loading[key] = mine
        try:
            value = await load()
            if self._loading.get(key) is mine:  # not detached by drop/clear meanwhile
                self.put(key, value)
                mine.value = value
            return value
        finally:
            if self._loading.get(key) is mine:
                del self._loading[key]
            mine.done.set()

    def put(self, key: object, value: ValueT) -> None:
        if len(self._entries) >= self._max_entries:
            now = self._clock()
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        self._entries[key] = (self._clock() + self._ttl, value)

    def drop(self, key: object) -> None:
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()


class AccessDecider:
    """Turns a verified token (or an agent name on stdio) into a `Principal` and its `ToolAccess`."""

    def __init__(self, store: AuthStore, *, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._grants = _TtlCache[SubjectGrants](ttl_seconds, clock=clock)
        self._agents = _TtlCache[AgentRecord](ttl_seconds, clock=clock)
        self._revoked = _TtlCache[bool](ttl_seconds, clock=clock)
        # Pure functions of (grants, token scopes), shared so that their answers per tool name are reused.
        self._decisions: dict[tuple[tuple[str, ...], tuple[str, ...] | None], ToolAccess] = {}

    async def principal_for_token(self, token: AccessToken) -> Principal:
        """The caller behind a verified token; `InvalidTokenError` if it was revoked or its agent is unknown."""

        async def load_agent() -> AgentRecord:
            agent = await self._store.agent_by_client_id(token.client_id)
            if agent is None:
                raise InvalidTokenError("the access token's client no longer exists")
            return agent

        agent = self._agents.get(token.client_id) or await self._agents.get_or_load(token.client_id, load_agent)
        if await self._is_revoked(token):
            raise InvalidTokenError("the access token has been revoked")
        return Principal(agent_id=agent.id, agent_name=agent.name, user_id=token.user_id, token_scopes=token.scopes)

    async def principal_for_agent(self, name: str) -> Principal:
        """A principal without a token (the stdio front door started with `--agent NAME`)."""
        agent = await self._store.agent_by_name(name)
        return Principal(agent_id=agent.id, agent_name=agent.name)

    async def access(self, principal: Principal) -> ToolAccess:
        """The caller's decision; a disabled agent or user gets no grants at all."""
        grants = await self._subject_grants(principal)
        key = (grants.patterns, principal.token_scopes)
        access = self._decisions.get(key)
        if access is None:
            if len(self._decisions) >= _MAX_SHARED_DECISIONS:
                self._decisions.clear()
            access = self._decisions[key] = ToolAccess(grants=grants.patterns, token_scopes=principal.token_scopes)
        return access

    async def is_enabled(self, principal: Principal) -> bool:
        return (await self._subject_grants(principal)).enabled

    async def _subject_grants(self, principal: Principal) -> SubjectGrants:
        cached = self._grants.get(principal.key)
        if cached is not None:
            return cached
        return await self._grants.get_or_load(
            principal.key, lambda: self._store.subject_grants(principal.agent_id, principal.user_id)
        )

    def forget_revocation(self, jti: str | None = None) -> None:
        """Forget the cached revocation state of one token (or of all, after a family is revoked)."""
        if jti is None:
            self._revoked.clear()
        else:
            self._revoked.drop(jti)

    def forget(self) -> None:
        """Drop every cached decision (after an admin change made by this process)."""
        self._grants.clear()
        self._agents.clear()
        self._revoked.clear()
        self._decisions.clear()

    async def _is_revoked(self, token: AccessToken) -> bool:
        cached = self._revoked.get(token.jti)
        if cached is not None:
            return cached

        async def load() -> bool:
            revoked = await self._store.is_access_token_revoked(token.jti)
            if not revoked and token.family_id is not None:
                revoked = bool(await self._store.revoked_families([token.family_id]))
            return revoked

        return await self._revoked.get_or_load(token.jti, load)
