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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", help="only inclusive rows whose frame contains this text")
    args = parser.parse_args(argv)
    path: Path = args.stacks
    print(summarise(path.read_text().splitlines(), args.top, args.match))
    return 0


if __name__ == "__main__":
    sys.exit(main())
