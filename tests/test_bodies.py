"""Bounded bodies (`mcp_hub.bodies`): a declared length the hub cannot read as a number is not an error of its own."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.types import Message

from mcp_hub.bodies import read_json_object
from mcp_hub.errors import InvalidRequestError


def _request(content_length: str, body: bytes) -> Request:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", b"application/json"), (b"content-length", content_length.encode("latin-1"))],
    }
    return Request(scope, receive)


async def test_a_non_ascii_digit_content_length_is_not_read_as_a_number() -> None:
    """`str.isdigit` accepts "²" and `int` refuses it: the body is read and bounded as it arrives instead."""
    assert await read_json_object(_request("\u00b2", b'{"a": 1}'), limit=100) == {"a": 1}


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(InvalidRequestError, match="larger than 10 bytes"):
        await read_json_object(_request("1000", b"{}"), limit=10)
