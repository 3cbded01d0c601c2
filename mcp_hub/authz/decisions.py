"""The one decision point: which tools, prompts and resources a caller may see and use (threats T09, T10, T27).

A decision comes from the stored grants, read through a short cache (`decision_cache_seconds`, default 2 s):
revoking a grant, disabling an agent or user, revoking a token or its refresh family takes effect within
that bound on every replica, without a database round trip per call (at once where the replicas share a bus:
the admin layer and `forget_revocation` tell the others, `mcp_hub.fanout`). The token's scopes only cap what the
grants allow: a tool is allowed when a grant AND a token scope match its public name (`tool:` patterns), a
prompt likewise (`prompt:`), a resource or resource template by its public URI (`resource:`). Every list and
every use asks `Access.allows`, so a list never shows what a call, get or read would refuse, or the reverse.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from mcp_hub.authz import scopes
from mcp_hub.authz.tokens import AccessToken
from mcp_hub.db.identities import AgentRecord, IdentityStore, SubjectGrants
from mcp_hub.db.oauth import OAuthStore
from mcp_hub.domain import AgentId, UserId
from mcp_hub.errors import InvalidTokenError
from mcp_hub.ttl_cache import TtlCache


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an agent, acting for itself or on a user's behalf, with the token's scope cap."""

    agent_id: AgentId
    agent_name: str
    user_id: UserId | None = None
    token_scopes: tuple[str, ...] | None = None
    """None: no token (stdio `--agent`), so the grants alone decide."""
    audience: str | None = None
    """The token's audience (the hub's MCP URL or a virtual server's, issue 11 §6); None without a token."""

    @property
    def key(self) -> tuple[AgentId, UserId | None]:
        return (self.agent_id, self.user_id)

    @property
    def label(self) -> str:
        """How the audit trail names the caller."""
        return f"agent:{self.agent_name}" + (f" for user:{self.user_id}" if self.user_id else "")


_EVERY_TOOL: Final = "tool:*"
_MAX_REMEMBERED_NAMES: Final = 4096
_MAX_SHARED_DECISIONS: Final = 256


@dataclass(frozen=True, slots=True)
class Access:
    """A caller's decision, ready for the hot path: pure, synchronous, no I/O."""

    grants: tuple[str, ...]
    token_scopes: tuple[str, ...] | None
    _answers: dict[tuple[str, str], bool] = field(
        default_factory=dict[tuple[str, str], bool], init=False, repr=False, compare=False
    )
    """(kind, name) already decided: the decider shares one `Access` per (grants, scopes) while they are cached."""

    @property
    def allows_every_tool(self) -> bool:
        """True when no tool name can be refused (a `tool:*` grant, and no narrower token scope)."""
        return _EVERY_TOOL in self.grants and (self.token_scopes is None or _EVERY_TOOL in self.token_scopes)

    def allows(self, public_name: str, kind: str = "tool") -> bool:
        """May the caller see and use the `kind` (`tool`, `prompt`, `resource`) with this public name or URI?"""
        key = (kind, public_name)
        answer = self._answers.get(key)
        if answer is None:
            granted = scopes.matcher(self.grants, kind)
            capped = None if self.token_scopes is None else scopes.matcher(self.token_scopes, kind)
            answer = (
                granted is not None
                and granted.fullmatch(public_name) is not None
                and (self.token_scopes is None or (capped is not None and capped.fullmatch(public_name) is not None))
            )
            if len(self._answers) < _MAX_REMEMBERED_NAMES:
                self._answers[key] = answer
        return answer

    def visibility(self, kind: str = "tool") -> scopes.Visibility:
        """Which `kind` names this caller sees, canonical: callers with equal visibilities share list pages."""
        return scopes.visibility(self.grants, self.token_scopes, kind)

    def allows_prompt(self, public_name: str) -> bool:
        return self.allows(public_name, "prompt")

    def allows_resource(self, public_uri: str) -> bool:
        return self.allows(public_uri, "resource")


class AccessDecider:
    """Turns a verified token (or an agent name on stdio) into a `Principal` and its `Access`."""

    def __init__(
        self,
        identities: IdentityStore,
        revocations: OAuthStore,
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        on_revocation: Callable[[], None] | None = None,
    ) -> None:
        """`on_revocation`: tells the other replicas that a token or family was revoked here (their caches drop
        it at once instead of within `ttl_seconds`)."""
        self._on_revocation = on_revocation
        self._identities = identities
        self._revocations = revocations
        self._grants = TtlCache[SubjectGrants](ttl_seconds, clock=clock)
        self._agents = TtlCache[AgentRecord](ttl_seconds, clock=clock)
        self._revoked = TtlCache[bool](ttl_seconds, clock=clock)
        # Pure functions of (grants, token scopes), shared so that their answers per tool name are reused.
        self._decisions: dict[tuple[tuple[str, ...], tuple[str, ...] | None], Access] = {}

    async def principal_for_token(self, token: AccessToken) -> Principal:
        """The caller behind a verified token; `InvalidTokenError` if it was revoked or its agent is unknown."""

        async def load_agent() -> AgentRecord:
            agent = await self._identities.agent_by_client_id(token.client_id)
            if agent is None:
                raise InvalidTokenError("the access token's client no longer exists")
            return agent

        agent = self._agents.get(token.client_id) or await self._agents.get_or_load(token.client_id, load_agent)
        if await self._is_revoked(token):
            raise InvalidTokenError("the access token has been revoked")
        user_id = None if token.user_id is None else UserId(token.user_id)
        return Principal(
            agent_id=agent.id,
            agent_name=agent.name,
            user_id=user_id,
            token_scopes=token.scopes,
            audience=token.audience,
        )

    async def principal_for_agent(self, name: str) -> Principal:
        """A principal without a token (the stdio front door started with `--agent NAME`); `NotFoundError`."""
        agent = await self._identities.agent_by_name(name)
        return Principal(agent_id=agent.id, agent_name=agent.name)

    async def access(self, principal: Principal) -> Access:
        """The caller's decision; a disabled agent or user gets no grants at all."""
        grants = await self._subject_grants(principal)
        key = (grants.patterns, principal.token_scopes)
        access = self._decisions.get(key)
        if access is None:
            if len(self._decisions) >= _MAX_SHARED_DECISIONS:
                self._decisions.clear()
            access = self._decisions[key] = Access(grants=grants.patterns, token_scopes=principal.token_scopes)
        return access

    async def is_enabled(self, principal: Principal) -> bool:
        return (await self._subject_grants(principal)).enabled

    async def _subject_grants(self, principal: Principal) -> SubjectGrants:
        cached = self._grants.get(principal.key)
        if cached is not None:
            return cached
        return await self._grants.get_or_load(
            principal.key, lambda: self._identities.subject_grants(principal.agent_id, principal.user_id)
        )

    def forget_revocation(self, jti: str | None = None) -> None:
        """Forget the cached revocation state of one token (or of all, after a family is revoked), here and, through
        `on_revocation`, on the other replicas."""
        if jti is None:
            self._revoked.clear()
        else:
            self._revoked.drop(jti)
        if self._on_revocation is not None:
            self._on_revocation()

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
            revoked = await self._revocations.is_access_token_revoked(token.jti)
            if not revoked and token.family_id is not None:
                revoked = bool(await self._revocations.revoked_families([token.family_id]))
            return revoked

        return await self._revoked.get_or_load(token.jti, load)
