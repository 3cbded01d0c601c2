"""Summarise py-spy collapsed stacks (`py-spy record --format raw`, as `bench/overhead.py --py-spy DIR` writes).

    .venv/bin/python bench/profile_summary.py DIR/hub-http-raw.txt [--top 25] [--match mcp_hub]

Prints the share of busy samples (idle samples, a thread waiting in `select`/`epoll`, are left out) spent
inside each function (inclusive) and in each function's own code (self), so that the cost of a layer
(e.g. the SDK's result validation, the audit writer, uvicorn's HTTP parsing) can be read off directly.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

# Layers of the hub's call path, as (name, pattern over one frame "func (path:line)"). A sample is charged
# to the layer of the frame nearest its leaf that matches, so e.g. pydantic work under the SDK server's
# result serialisation counts as "SDK server: result validation", not as pydantic.
LAYERS: list[tuple[str, re.Pattern[str]]] = [
    ("kernel: socket/pipe send+recv", re.compile(r"^(_SelectorSocketTransport\.write|.*\.(send|recv|sendall)) \(")),
    ("audit: aiosqlite/SQLAlchemy", re.compile(r"aiosqlite/|sqlalchemy/|mcp_hub/audit/|mcp_hub/db/")),
    ("SDK server: Mcp-Param check (tools/list per call)", re.compile(r"^_mcp_param_rejection ")),
    ("SDK server: result validation+serialisation", re.compile(r"^(ServerRunner\._serialize|_to_jsonrpc_response) ")),
    ("OpenTelemetry spans (no-op tracer)", re.compile(r"opentelemetry/|/_otel\.py")),
    ("SDK server: dispatch, params validation", re.compile(r"mcp/server/runner\.py")),
    ("SDK client: transport (streamable HTTP / stdio)", re.compile(r"mcp/client/(streamable_http|stdio)\.py")),
    ("SDK client: session + dispatcher", re.compile(r"mcp/client/|mcp/shared/")),
    ("httpx2/httpcore2 (hub -> downstream)", re.compile(r"httpx2/|httpcore2/")),
    ("hub code (mcp_hub)", re.compile(r"mcp_hub/")),
    ("HTTP server: uvicorn/h11/starlette/SDK transport", re.compile(r"uvicorn/|h11/|starlette/|mcp/server/")),
]
ANCESTOR_LAYERS = [layer for layer in LAYERS if layer[0].startswith(("SDK server: Mcp-Param", "audit"))]
_FALLBACKS: list[tuple[str, re.Pattern[str]]] = [
    ("pydantic (other)", re.compile(r"pydantic")),
    ("event loop, anyio, other", re.compile(r".")),
]


def _layer_of(frames: Sequence[str]) -> str:
    """The layer of the frame nearest the leaf that names one; the generic fallbacks only if none does.

    The first layers of `ANCESTOR_LAYERS` win wherever they appear in the stack: all the work done on
    their behalf (the SDK's per-call tools/list, say, which is mostly result serialisation) is theirs.
    """
    for name, pattern in ANCESTOR_LAYERS:
        if any(pattern.search(frame) for frame in frames):
            return name
    for frame in reversed(frames):
        for name, pattern in LAYERS:
            if pattern.search(frame):
                return name
    for name, pattern in _FALLBACKS:
        if any(pattern.search(frame) for frame in frames):
            return name
    return _FALLBACKS[-1][0]


_IDLE = re.compile(r"\b(select|poll|epoll_wait|_run_once)\b \((?:selectors|asyncio/base_events)\.py")
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>.+?)(?::\d+)?\)$")


def _short(frame: str) -> str:
    """`func (path/to/pkg/module.py:123)` -> `func (pkg/module.py)`."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    parts = Path(match.group("file")).parts
    return f"{match.group('func')} ({'/'.join(parts[-2:])})"


def summarise(lines: Sequence[str], top: int, match: str | None) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    busy = idle = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        if frames and _IDLE.search(stack.split(";")[-1]):
            idle += count
            continue
        busy += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    if not busy:
        return "no busy samples"
    out = [f"busy samples: {busy} ({busy / (busy + idle):.0%} of all; idle {idle})", "", "inclusive:"]
    shown = [(frame, count) for frame, count in inclusive.most_common() if match is None or match in frame]
    out.extend(f"  {count / busy:6.1%}  {frame}" for frame, count in shown[:top])
    out.extend(["", "self:"])
    out.extend(f"  {count / busy:6.1%}  {frame}" for frame, count in own.most_common(top))
    return "\n".join(out)


def layers(lines: Sequence[str]) -> str:
    """Busy samples charged to the nearest recognisable layer of the call path."""
    charged: Counter[str] = Counter()
    busy = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if _IDLE.search(frames[-1]):
            continue
        count = int(count_text)
        busy += count
        charged[_layer_of(frames)] += count
    if not busy:
        return "no busy samples"
    return "\n".join(f"  {count / busy:6.1%}  {name}" for name, count in charged.most_common())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", help="only inclusive rows whose frame contains this text")
    parser.add_argument("--layers", action="store_true", help="charge samples to layers of the call path instead")
    args = parser.parse_args(argv)
    path: Path = args.stacks
    lines = path.read_text().splitlines()
    print(layers(lines) if args.layers else summarise(lines, args.top, args.match))
    return 0


if __name__ == "__main__":
    sys.exit(main())
