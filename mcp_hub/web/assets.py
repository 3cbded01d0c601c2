"""The pages' stylesheet and script, served by the hub itself from `mcp_hub/web/static/` under `/static/`.

Pages link each file by a versioned URL, `/static/<name>?v=<first 16 hex digits of its SHA-256>`. An answer
to the URL of the current version may be cached for a year (`immutable`, RFC 8246): a changed file gets a new
URL. Any other request (no `v`, an old one) is answered with `Cache-Control: no-cache`, so a cache asks again
(the `ETag` makes that cheap). Every answer, 404 included, carries the pages' other security headers
(`mcp_hub.web.pages.SecurityHeaders`); `X-Content-Type-Options: nosniff` holds because each file is sent
with its own media type (`text/css`, `text/javascript`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from mcp_hub.web.pages import SecurityHeaders

STATIC_PATH: Final = "/static"
STATIC_DIRECTORY: Final = Path(__file__).with_name("static")
CACHE_VERSIONED: Final = "public, max-age=31536000, immutable"
CACHE_UNVERSIONED: Final = "no-cache"
_VERSION_LENGTH: Final = 16


class _VersionedFiles(StaticFiles):
    """`StaticFiles` that sets `Cache-Control` by version and answers errors as plain text it can decorate."""

    def __init__(self, directory: Path, versions: dict[str, str]) -> None:
        super().__init__(directory=directory)
        self._versions = versions

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            # Answered here rather than by the app's exception handler, so the security headers are on it.
            return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
        current = self._versions.get(path)
        asked = QueryParams(scope.get("query_string", b"")).get("v")
        versioned = current is not None and asked == current and response.status_code in (200, 304)
        response.headers["cache-control"] = CACHE_VERSIONED if versioned else CACHE_UNVERSIONED
        return response


class StaticAssets:
    """The files of `directory` (read once, for their versions) and the route that serves them."""

    def __init__(self, directory: Path = STATIC_DIRECTORY) -> None:
        self._versions = {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:_VERSION_LENGTH]
            for path in sorted(directory.iterdir())
            if path.is_file()
        }
        self._files = _VersionedFiles(directory, self._versions)

    def url(self, name: str) -> str:
        """The versioned URL of the file `name` (a `KeyError` for a file that is not there: a bug)."""
        return f"{STATIC_PATH}/{name}?v={self._versions[name]}"

    def routes(self) -> list[BaseRoute]:
        return [Mount(STATIC_PATH, app=SecurityHeaders(self._files, cache_control=None), name="static")]
