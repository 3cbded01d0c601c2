"""`mcp-hub virtual add|list|remove`: virtual servers as files in `[hub] virtual_dir` (issue 11 §6).

The command writes and reads `virtual/<name>.toml` (`mcp_hub.config.virtual`); it does not need the hub or its
database. The hub reads the files when it starts: restart it after a change.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mcp_hub.config.settings import HubSettings
from mcp_hub.config.virtual import VirtualServerSpec, load_virtual_server, load_virtual_servers
from mcp_hub.errors import InvalidInputError


def add_virtual_command(commands: Any, common: argparse.ArgumentParser) -> None:
    virtual = commands.add_parser("virtual", parents=[common], help="virtual servers: curated profiles at /mcp/v/")
    verbs = virtual.add_subparsers(dest="virtual_command", required=True)
    add = verbs.add_parser("add", parents=[common], help="write a virtual server's file")
    add.add_argument("name")
    add.add_argument("--tool", action="append", default=[], metavar="GLOB", help="public tool names, e.g. time__*")
    add.add_argument("--prompt", action="append", default=[], metavar="GLOB")
    add.add_argument("--resource", action="append", default=[], metavar="GLOB", help="public URIs")
    add.add_argument("--rename", action="append", default=[], metavar="PUBLIC=NAME")
    add.add_argument("--description", action="append", default=[], metavar="PUBLIC=TEXT")
    add.add_argument("--meta-tools", choices=["off", "add", "only"], default="off")
    add.add_argument("--replace", action="store_true", help="overwrite an existing file")
    verbs.add_parser("list", parents=[common], help="every virtual server").add_argument("--json", action="store_true")
    verbs.add_parser("remove", parents=[common], help="delete a virtual server's file").add_argument("name")


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, target = value.partition("=")
        if not sep or not key or not target:
            raise InvalidInputError(f"{option} {value!r}: expected PUBLIC=VALUE")
        pairs[key] = target
    return pairs


def run_virtual(args: argparse.Namespace, settings: HubSettings) -> int:
    directory = settings.virtual_dir
    verb: str = args.virtual_command
    if verb == "add":
        try:
            spec = VirtualServerSpec(
                name=args.name,
                tools=args.tool,
                prompts=args.prompt,
                resources=args.resource,
                rename=_pairs(args.rename, "--rename"),
                descriptions=_pairs(args.description, "--description"),
                meta_tools=args.meta_tools,
            )
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        path = directory / f"{spec.name}.toml"
        if path.exists() and not args.replace:
            raise InvalidInputError(f"{path} exists: use --replace to overwrite it")
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(spec.to_toml())
        load_virtual_server(path)  # what we wrote must load
        url = f"{settings.public_base_url}{settings.hub.mcp_path}/v/{spec.name}"
        print(f"virtual server {spec.name} written to {path}; served at {url} once the hub (re)starts")
        return 0
    if verb == "remove":
        path = directory / f"{args.name}.toml"
        if not path.is_file():
            print(f"mcp-hub: no virtual server {args.name!r} in {directory}")
            return 1
        path.unlink()
        print(f"virtual server {args.name} removed; the hub stops serving it when it restarts")
        return 0
    specs = load_virtual_servers(directory)
    if args.json:
        print(json.dumps([spec.model_dump() for spec in specs], indent=2))
        return 0
    for spec in specs:
        renamed = f", {len(spec.rename)} renamed" if spec.rename else ""
        print(f"{spec.name:<24} tools {' '.join(spec.tools) or '-'}{renamed}; meta_tools {spec.meta_tools}")
    return 0
