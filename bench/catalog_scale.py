"""Catalog scale (issue 11 §7): 100 connectors, 10,000 tools; a caller's filtered `tools/list` first page and a
`search_tools` query, measured on the hub's own code paths in-process (no HTTP, no SDK serialization).

What runs is what a request runs: `Catalog.replace_connector` for each connector's listing, then per request a
fresh `Access` (as after the decision cache expires: no remembered answers) and either
`gateway.lists.list_page` (the first page, `[catalog] page_size`) or `SearchIndex.search` (the meta-tool's
ranking and grant filter). Three callers: every tool (`tool:*`), one connector in ten (`tool:c?0__*`), and a
narrow one (five tools) whose first page must walk the whole catalog to fill.

    .venv/bin/python bench/catalog_scale.py [--connectors 100] [--tools 100] [--rounds 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from mcp_hub.authz.decisions import Access
from mcp_hub.catalog.catalog import Catalog
from mcp_hub.catalog.virtual import SearchIndex
from mcp_hub.domain import Caller, ConnectorListing
from mcp_hub.gateway.caller import Asking
from mcp_hub.gateway.lists import ListShape, list_page

WORDS = [
    "get",
    "list",
    "create",
    "update",
    "delete",
    "search",
    "issue",
    "ticket",
    "invoice",
    "customer",
    "order",
    "file",
    "folder",
    "message",
    "channel",
    "user",
    "repository",
    "branch",
    "commit",
    "weather",
    "forecast",
    "calendar",
    "event",
    "meeting",
    "note",
    "page",
    "database",
    "table",
    "query",
    "report",
]


def listing(connector: int, tools: int, rng: random.Random) -> ConnectorListing:
    defs: list[dict[str, Any]] = []
    for index in range(tools):
        verb, noun, other = rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS)
        defs.append(
            {
                "name": f"{verb}_{noun}_{index}",
                "description": f"{verb.capitalize()} a {noun} of the {other} service (connector {connector}).",
                "inputSchema": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "limit": {"type": "integer"}},
                    "required": ["id"],
                },
            }
        )
    return ConnectorListing(tools=tuple(defs), capabilities={"tools": {"listChanged": True}})


def timed(rounds: int, work: Callable[[], object]) -> tuple[float, float]:
    samples: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connectors", type=int, default=100)
    parser.add_argument("--tools", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(11)  # noqa: S311 - reproducible fixture names, not secrets
    catalog = Catalog()
    started = time.perf_counter()
    for connector in range(args.connectors):
        catalog.replace_connector(f"c{connector:02d}", listing(connector, args.tools, rng))
    federated_ms = (time.perf_counter() - started) * 1000
    shape = ListShape(page_size=500, ttl_ms=60_000)
    index = SearchIndex.over(catalog.tools)
    index.search("warm", 1, None)  # the index is built once per catalog snapshot
    callers = {
        "tool:*": ("tool:*",),
        "1 connector in 10": ("tool:c?0__*",),
        "5 tools": tuple(f"tool:c99__{entry.downstream_name}" for entry in catalog.tools.of_connector("c99")[:5]),
    }
    print(f"{len(catalog.tools)} tools from {args.connectors} connectors; catalog built in {federated_ms:.0f} ms")
    print(f"{'caller':<20} {'list p50':>9} {'list p99':>9} {'search p50':>11} {'search p99':>11}  (ms)")
    for label, grants in callers.items():

        def asking(grants: tuple[str, ...] = grants) -> Asking:
            return Asking(principal=None, access=Access(grants=grants, token_scopes=None), caller=Caller(client="b"))

        def first_page(asking: Callable[[], Asking] = asking) -> object:
            return list_page(catalog.tools, "tools", asking(), None, shape)

        def search(asking: Callable[[], Asking] = asking) -> object:
            who = asking()
            return index.search("create invoice customer", 20, lambda name: who.allows(name, "tool"))

        list_p50, list_p99 = timed(args.rounds, first_page)
        search_p50, search_p99 = timed(args.rounds, search)
        print(f"{label:<20} {list_p50:>9.2f} {list_p99:>9.2f} {search_p50:>11.2f} {search_p99:>11.2f}")


if __name__ == "__main__":
    main()
