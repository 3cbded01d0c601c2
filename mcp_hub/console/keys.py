"""`GET /admin/keys`: the token signing keys (their ids and dates; never a private half), and rotation after a
confirmation page (`GET /admin/keys/confirm`, `POST /admin/keys/rotate`) through `mcp_hub.admin.KeyAdmin`, audited
with the signed-in admin. A rotated-in key is published now and signs after the ring's publish-ahead delay, so
caches of the JWKS learn it first (threat T03)."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.admin.changes import Actor
from mcp_hub.admin.signing_keys import KeyAdmin
from mcp_hub.console.base import ConsolePage, see_other
from mcp_hub.domain import utc_now
from mcp_hub.web.errors import Problem
from mcp_hub.web.sessions import WebSession

KEYS_PATH: Final = "/admin/keys"


class KeyPages:
    def __init__(self, page: ConsolePage, keys: KeyAdmin) -> None:
        self._page = page
        self._keys = keys

    async def index(self, request: Request, viewer: WebSession) -> Response:
        moment = utc_now()
        keys = sorted(await self._keys.list(), key=lambda key: key.published_at, reverse=True)
        signing = [
            key for key in keys if key.signs_from <= moment and (key.retires_at is None or key.retires_at > moment)
        ]
        context: dict[str, object] = {
            # Only what may be shown: the private JWK never reaches a template.
            "keys": [
                {
                    "kid": key.kid,
                    "algorithm": key.algorithm,
                    "published_at": key.published_at,
                    "signs_from": key.signs_from,
                    "retires_at": key.retires_at,
                    "current": bool(signing) and key.kid == max(signing, key=lambda k: k.signs_from).kid,
                }
                for key in keys
            ],
            "done": request.query_params.get("done"),
        }
        return self._page.render(request, viewer, "keys.html", context, section="keys")

    async def confirm(self, request: Request, viewer: WebSession) -> Response:
        context: dict[str, object] = {
            "title": "Rotate the signing keys?",
            "consequence": "A new key is published now and signs new tokens after the publish-ahead delay; tokens "
            "the current key signed stay valid until they expire.",
            "button": "Rotate",
            "danger": False,
            "action": f"{KEYS_PATH}/rotate",
            "fields": {},
            "back": KEYS_PATH,
        }
        return self._page.render(request, viewer, "confirm.html", context, section="keys")

    async def rotate(self, request: Request, viewer: WebSession) -> Response:
        form = await self._page.form(request, viewer)
        if isinstance(form, Problem):
            return self._page.problem(request, viewer, form, back=KEYS_PATH)
        await self._keys.rotate(Actor.user(viewer.user.name))
        return see_other(f"{KEYS_PATH}?done=rotated")
