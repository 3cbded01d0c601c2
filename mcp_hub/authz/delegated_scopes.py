"""The scopes of a token an agent obtains on a user's behalf (RFC 6749 §3.3; OAuth 2.1 §1.4.1).

Such a token is decided by the USER's grants (`AuthService.granted_scopes` with the user's id: a disabled
user or agent gets nothing). Its scope is what was requested ∩ what the user is granted, taken both ways:
a requested pattern some grant covers (`tool:faults__echo` under a grant `tool:faults__*`) and a granted
pattern the request covers (a grant `tool:faults__echo` under a request `tool:*`, which is what an MCP
client asks for when the hub's 401 challenge says `scope="tool:*"`). Nothing in the result matches a name
that either side would refuse, so the token never carries more than the user holds.

At the authorization endpoint a disabled user is `access_denied` (RFC 6749 §4.1.2.1); at the token endpoint
(`grant_scopes`: the code and refresh grants) it is `invalid_grant` (§5.2: the grant was issued to a
resource owner who may no longer use it), since `access_denied` is not a token endpoint error.
"""

from __future__ import annotations

from mcp_hub.authz import scopes
from mcp_hub.authz.service import AuthService
from mcp_hub.db.auth_store import AgentRecord
from mcp_hub.errors import OAuthError


async def delegated_scopes(service: AuthService, agent: AgentRecord, user_id: str, requested: str | None) -> list[str]:
    """requested ∩ the user's grants; `OAuthError` (`invalid_scope`, `access_denied`) if nothing remains."""
    try:
        wanted = scopes.parse_scope(requested)
    except ValueError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None
    granted = await service.granted_scopes(agent, user_id, None)
    if wanted is None:
        return granted
    kept = set(scopes.narrow(wanted, granted))
    kept.update(grant for grant in granted if any(scopes.covers(item, grant) for item in wanted))
    if not kept:
        raise OAuthError("invalid_scope", "none of the requested scopes is granted to this user")
    return sorted(kept)


async def grant_scopes(service: AuthService, agent: AgentRecord, user_id: str, requested: str | None) -> list[str]:
    """`delegated_scopes` for the token endpoint: a disabled user or agent is `invalid_grant` (RFC 6749 §5.2)."""
    try:
        return await delegated_scopes(service, agent, user_id, requested)
    except OAuthError as exc:
        if exc.error == "access_denied":
            raise OAuthError("invalid_grant", "the user this grant was issued for is disabled") from None
        raise
