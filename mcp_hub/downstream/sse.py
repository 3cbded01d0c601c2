"""Server-sent events read from a downstream's byte stream, each event bounded in size
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).

One splitter for both readers of a Streamable HTTP downstream's SSE answers: the SDK path's tagging transport
(`tagging.py`, which re-emits each event) and the lean client (`lean_http.py`, which reads each event's data).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable


async def sse_events(
    chunks: AsyncIterable[bytes], limit: int, over: Callable[[int], Exception]
) -> AsyncIterator[list[bytes]]:
    """Each event of the stream as its non-empty lines (line endings removed); an event (with its unfinished
    line) growing beyond `limit` bytes raises `over(size)`."""
    event: list[bytes] = []
    event_bytes = 0
    line: list[bytes] = []  # the unfinished line, in pieces (joining per chunk would be quadratic)
    line_bytes = 0
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            line.append(chunk[start:end])
            start = end + 1
            whole = b"".join(line).removesuffix(b"\r")
            line, line_bytes = [], 0
            if whole:
                event.append(whole)
                event_bytes += len(whole)
            elif event:
                yield event
                event, event_bytes = [], 0
        line.append(chunk[start:])
        line_bytes += len(chunk) - start
        if event_bytes + line_bytes > limit:
            raise over(event_bytes + line_bytes)
    if event:
        yield event
