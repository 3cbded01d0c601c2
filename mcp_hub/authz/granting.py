"""The scopes a token gets: what was requested ∩ what its subject is granted (RFC 6749 §3.3; OAuth 2.1 §1.4.1).

A client-credentials token is decided by the agent's own grants; a token an agent obtains on a user's behalf
(authorization code, refresh) by the USER's grants. Either way a disabled agent or user gets nothing. The
intersection is taken both ways (`scopes.narrow`): a requested pattern some grant covers (`tool:faults__echo`
under a grant `tool:faults__*`) and a granted pattern the request covers (a grant `tool:faults__echo` under a
request `tool:*`, which is what an MCP client asks for when the hub's 401 challenge says
`scope="tool:* prompt:* resource:*"`).
Nothing in the result matches a name that either side would refuse, so a token never carries more than its
subject holds.

The admin API's scope (`scopes.ADMIN_SCOPE`) is apart: a token for the admin API (`admin=True`) is a
client-credentials token of a confidential agent an admin created and granted `admin:api`, and carries that scope
alone; every other token is decided without it (docs/admin-api.md, threat T10).

Errors: an empty result is `invalid_scope`. A disabled subject is, at the token endpoint, `invalid_client`
(401) for the agent itself (RFC 6749 §5.2: disabled since it authenticated) and `invalid_grant` for a user
(§5.2: the grant was issued to a resource owner who may no longer use it); at the authorization endpoint a
disabled user is `access_denied` (§4.1.2.1).
"""

from __future__ import annotations

from mcp_hub.authz import scopes
from mcp_hub.db.identities import AgentRecord, IdentityStore
from mcp_hub.domain import AgentSource, UserId
from mcp_hub.errors import OAuthError


def _requested(requested: str | None) -> list[str] | None:
    try:
        return scopes.parse_scope(requested)
    except ValueError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None


class ScopeGranter:
    """Decides the scope of a token from the subject's stored grants."""

    def __init__(self, identities: IdentityStore) -> None:
        self._identities = identities

    async def for_agent(self, agent: AgentRecord, requested: str | None, *, admin: bool = False) -> list[str]:
        """A token for the agent itself (client credentials, or a refresh of an agent-only family); `admin`: for
        the admin API."""
        wanted = _requested(requested)
        subject = await self._identities.subject_grants(agent.id, None)
        if not subject.enabled:
            raise OAuthError("invalid_client", "this client is disabled", 401)
        if admin:
            return self._for_admin_api(agent, wanted, subject.patterns)
        return self._narrowed(wanted, scopes.without_admin(subject.patterns), "none of the requested scopes is granted")

    @staticmethod
    def _for_admin_api(agent: AgentRecord, wanted: list[str] | None, granted: tuple[str, ...]) -> list[str]:
        if agent.source is not AgentSource.ADMIN or agent.is_public or scopes.ADMIN_SCOPE not in granted:
            raise OAuthError(
                "invalid_scope", f"only a confidential agent an admin created and granted {scopes.ADMIN_SCOPE} may"
            )
        if wanted is not None and wanted != [scopes.ADMIN_SCOPE]:
            raise OAuthError("invalid_scope", f"a token for the admin API carries {scopes.ADMIN_SCOPE} alone")
        return [scopes.ADMIN_SCOPE]

    async def for_user(self, agent: AgentRecord, user_id: UserId, requested: str | None) -> list[str]:
        """A token `agent` obtains for `user_id`, at the authorization endpoint (`access_denied` if disabled)."""
        wanted = _requested(requested)
        subject = await self._identities.subject_grants(agent.id, user_id)
        if not subject.enabled:
            raise OAuthError("access_denied", "the user or the client is disabled")
        patterns = scopes.without_admin(subject.patterns)
        return self._narrowed(wanted, patterns, "none of the requested scopes is granted to this user")

    async def for_user_at_token_endpoint(self, agent: AgentRecord, user_id: UserId, requested: str | None) -> list[str]:
        """`for_user` at the token endpoint, where a disabled user is `invalid_grant` (RFC 6749 §5.2)."""
        try:
            return await self.for_user(agent, user_id, requested)
        except OAuthError as exc:
            if exc.error == "access_denied":
                raise OAuthError("invalid_grant", "the user this grant was issued for is disabled") from None
            raise

    @staticmethod
    def _narrowed(wanted: list[str] | None, granted: tuple[str, ...], nothing_left: str) -> list[str]:
        narrowed = scopes.narrow(wanted, granted)
        if not narrowed:
            raise OAuthError("invalid_scope", nothing_left)
        return narrowed
