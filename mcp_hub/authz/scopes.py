"""Grant patterns and OAuth scope strings.

A grant (and a scope, RFC 6749 §3.3) is `<kind>:<glob>`: `tool:time__*`, `tool:*`, `tool:git__git_status`,
`prompt:everything__*`, `resource:mcp-hub://files/*`. The glob is matched against public tool and prompt names
and public resource URIs (`mcp_hub.catalog.names`) with `*` (any run) and `?` (one character),
case-sensitively; no other glob syntax is accepted, so a pattern's meaning is obvious to the admin who writes
it. Tool and prompt globs use the characters of public names; resource globs any character a scope token may
hold (RFC 6749 §3.3 `NQCHAR`: printable ASCII but space, `"` and `\\`), since URIs need them.

The token's scopes are a cap, not the source of truth: a call is allowed when a stored grant AND a token
scope both match it (`mcp_hub.authz.decisions`).

One grant is not a glob: `admin:api` (`ADMIN_SCOPE`), the admin JSON API (docs/admin-api.md). Only an admin
grants it (`mcp-hub grants add` or the API), only a confidential agent an admin created may get a token with it,
and that token's audience is the admin API alone (`OAuthUrls.admin_resource`); a token for an MCP endpoint never
carries it (`ScopeGranter`), so an MCP token is no admin credential and an admin token no MCP one (threat T10).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from mcp_hub.errors import InvalidInputError

SCOPE_KINDS: Final = ("tool", "resource", "prompt")
ADMIN_SCOPE: Final = "admin:api"
_PATTERN = re.compile(r"^(?:(?:tool|prompt):[A-Za-z0-9_.*?-]{1,200}|resource:[\x21\x23-\x5b\x5d-\x7e]{1,240})$")


def validate_pattern(pattern: str) -> str:
    """Return `pattern` if it is a well-formed grant pattern; `InvalidInputError` naming the problem otherwise."""
    if pattern != ADMIN_SCOPE and not _PATTERN.match(pattern):
        raise InvalidInputError(
            f"{pattern!r} is not a grant pattern: expected <kind>:<glob>, kind one of {', '.join(SCOPE_KINDS)}; "
            "a tool or prompt glob of letters, digits, '_', '.', '-', '*', '?' (e.g. tool:time__*), a resource glob "
            "of printable ASCII without spaces, quotes or backslashes (e.g. resource:mcp-hub://files/*); "
            f"or {ADMIN_SCOPE}, the admin API"
        )
    return pattern


@lru_cache(maxsize=4096)
def _glob(glob: str, *, over_globs: bool = False) -> re.Pattern[str]:
    # Over another glob (`covers`), a `?` must not stand for the other glob's `*`, which matches more.
    one = "[^*]" if over_globs else "."
    parts = (".*" if char == "*" else one if char == "?" else re.escape(char) for char in glob)
    return re.compile("".join(parts), re.DOTALL)


def matches(pattern: str, kind: str, name: str) -> bool:
    """Does `pattern` cover the public `name` of that `kind`?"""
    pattern_kind, _, glob = pattern.partition(":")
    return pattern_kind == kind and _glob(glob).fullmatch(name) is not None


@lru_cache(maxsize=1024)
def matcher(patterns: tuple[str, ...], kind: str) -> re.Pattern[str] | None:
    """One regular expression for every pattern of `kind` (None: none of that kind): what `any_matches` answers,
    in one match per name instead of one per pattern (a filtered list walks 10,000 names, issue 11 §7)."""
    globs = tuple(
        glob for pattern_kind, _, glob in (pattern.partition(":") for pattern in patterns) if pattern_kind == kind
    )
    return _alternation(globs) if globs else None


@lru_cache(maxsize=1024)
def _alternation(globs: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{_glob(glob).pattern})" for glob in globs), re.DOTALL)


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which names of one kind a caller may see, canonical: two callers with equal `Visibility` see the same
    names, whatever else their grants and scopes say. It keys the pages served per authorization context
    (`mcp_hub.gateway.lists`).

    `granted` are the grant globs of the kind, `capped` the token scope globs (None: no cap); both sorted and
    deduplicated, `("*",)` for "any name". No grant of the kind, or a token without a scope of it: nothing.
    """

    kind: str
    granted: tuple[str, ...]
    capped: tuple[str, ...] | None

    @property
    def everything(self) -> bool:
        return self.granted == ("*",) and self.capped is None

    @property
    def nothing(self) -> bool:
        return not self.granted

    def predicate(self) -> Callable[[str], bool] | None:
        """A test of one name (None: every name passes): the same regular expressions `Access.allows` asks."""
        if self.everything:
            return None
        if self.nothing:
            return _refuse
        granted = _alternation(self.granted)
        if self.capped is None:
            return lambda name: granted.fullmatch(name) is not None
        capped = _alternation(self.capped)
        return lambda name: granted.fullmatch(name) is not None and capped.fullmatch(name) is not None


def _refuse(name: str) -> bool:
    del name
    return False


def _globs_of(patterns: Iterable[str], kind: str) -> tuple[str, ...]:
    globs = {glob for pattern_kind, _, glob in (pattern.partition(":") for pattern in patterns) if pattern_kind == kind}
    return ("*",) if "*" in globs else tuple(sorted(globs))


@lru_cache(maxsize=1024)
def visibility(grants: tuple[str, ...], token_scopes: tuple[str, ...] | None, kind: str) -> Visibility:
    """The canonical form of what `grants` capped by `token_scopes` let a caller see of `kind`."""
    granted = _globs_of(grants, kind)
    capped = None if token_scopes is None else _globs_of(token_scopes, kind)
    if not granted or capped == ():
        return Visibility(kind, (), None)
    if capped == ("*",):
        capped = None
    if granted == ("*",) and capped is not None:
        granted, capped = capped, None
    return Visibility(kind, granted, capped)


def any_matches(patterns: Iterable[str], kind: str, name: str) -> bool:
    return any(matches(pattern, kind, name) for pattern in patterns)


def without_admin(patterns: Iterable[str]) -> tuple[str, ...]:
    """The patterns but `ADMIN_SCOPE`: what a token for an MCP endpoint may carry."""
    return tuple(pattern for pattern in patterns if pattern != ADMIN_SCOPE)


def covers(granted: str, requested: str) -> bool:
    """Is every name `requested` could match also matched by `granted`? (Conservative: globs as text.)"""
    granted_kind, _, granted_glob = granted.partition(":")
    requested_kind, _, requested_glob = requested.partition(":")
    return granted_kind == requested_kind and _glob(granted_glob, over_globs=True).fullmatch(requested_glob) is not None


def parse_scope(scope: str | None) -> list[str] | None:
    """RFC 6749 §3.3: space-delimited; None when absent. Malformed entries raise `InvalidInputError`."""
    if scope is None:
        return None
    return [validate_pattern(item) for item in dict.fromkeys(scope.split())]


def format_scope(patterns: Iterable[str]) -> str:
    return " ".join(sorted(set(patterns)))


def narrow(requested: Sequence[str] | None, granted: Sequence[str]) -> list[str]:
    """The scopes a token gets: requested ∩ granted, taken both ways; everything granted if nothing was asked.

    A requested pattern a grant covers is kept (`tool:time__now` under `tool:time__*`), and so is a grant
    the request covers (`tool:time__*` under a request for `tool:*`, which MCP clients send because the
    hub's 401 says `scope="tool:*"`). Patterns that merely overlap are dropped: conservative, never wider.
    """
    if requested is None:
        return sorted(set(granted))
    kept = {item for item in requested if any(covers(grant, item) for grant in granted)}
    kept.update(grant for grant in granted if any(covers(item, grant) for item in requested))
    return sorted(kept)


def required_scope(kind: str, name: str) -> str:
    """The narrowest scope that would allow `name`: what a 403 names."""
    return f"{kind}:{name}"
