"""The structure docs/architecture.md draws, checked: layers point one way, and one exception tree.

Our design (issue 8): no package imports a package above it (the contract in `pyproject.toml`, checked by
import-linter over the whole import graph, indirect imports included), and every exception the hub raises on
purpose is a class of `mcp_hub.errors`, whose docstring draws the tree exactly as the classes are.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mcp_hub
from mcp_hub import errors

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter with the repository's contracts, over the `mcp_hub` package found under `root`."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_no_module_imports_a_layer_above_it() -> None:
    """The layers of docs/architecture.md, top to bottom: cli, runtime, web | gateway | admin, approvals,
    authz | audit, catalog | downstream, db, config, the neutral helpers, domain, errors."""
    checked = lint_imports(REPO)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 kept, 0 broken" in checked.stdout


def test_an_import_that_points_up_breaks_the_contract(tmp_path: Path) -> None:
    """The check above can fail: the same contracts over a copy of the package in which the database layer
    imports the gateway (a layer above it) report the contract broken and name the import."""
    shutil.copytree(REPO / "mcp_hub", tmp_path / "mcp_hub", ignore=shutil.ignore_patterns("__pycache__"))
    base = tmp_path / "mcp_hub" / "db" / "_base.py"
    base.write_text(base.read_text() + "\nfrom mcp_hub.gateway import server  # noqa: E402\n")

    checked = lint_imports(tmp_path)

    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "0 kept, 1 broken" in checked.stdout
    assert "mcp_hub.db._base -> mcp_hub.gateway.server" in checked.stdout


def _modules() -> list[str]:
    names = ["mcp_hub"]
    for info in pkgutil.walk_packages(mcp_hub.__path__, prefix="mcp_hub."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def test_every_exception_the_hub_defines_is_in_the_one_tree() -> None:
    """Style guide §5 (one exception tree): no module but `mcp_hub.errors` defines an exception class."""
    elsewhere = [
        f"{name}.{member.__name__}"
        for name in _modules()
        for member in vars(importlib.import_module(name)).values()
        if inspect.isclass(member)
        and issubclass(member, BaseException)
        and member.__module__ == name
        and name != errors.__name__
    ]

    assert elsewhere == []


def _drawn_tree() -> dict[str, str | None]:
    """class name → parent name, as the docstring of `mcp_hub.errors` draws them (indentation = depth)."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^(?P<lead>[ │├└─]*)(?P<name>[A-Z]\w+Error)\b", line)
        if match is None or not line.startswith("    "):
            continue
        depth = len(match.group("lead"))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[match.group("name")] = stack[-1][1] if stack else None
        stack.append((depth, match.group("name")))
    return parents


def test_the_docstring_of_the_error_tree_is_the_class_hierarchy() -> None:
    """Issue 8 (the docstring is the truth): every class of `mcp_hub.errors` is drawn, under its base."""
    classes = {
        name: member
        for name, member in vars(errors).items()
        if inspect.isclass(member) and issubclass(member, errors.HubError)
    }
    actual = {
        name: next((base.__name__ for base in member.__bases__ if issubclass(base, errors.HubError)), None)
        for name, member in classes.items()
    }

    assert _drawn_tree() == actual
