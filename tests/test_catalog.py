"""The unified catalog: public names (T17), order, pagination, change detection (T16 groundwork)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_hub.catalog.catalog import Catalog, CatalogChange, InvalidCursorError, definition_sha256
from mcp_hub.catalog.names import MAX_PUBLIC_NAME_LENGTH, public_name
from mcp_hub.config.connectors import CONNECTOR_ID_PATTERN
from mcp_hub.domain import ConnectorListing

connector_ids = st.from_regex(CONNECTOR_ID_PATTERN, fullmatch=True)
tool_names = st.text(min_size=1, max_size=200)
SPEC_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def tools_listing(tools: list[dict[str, Any]]) -> ConnectorListing:
    return ConnectorListing(tools=tuple(tools))


def tool(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "inputSchema": {"type": "object"}, **extra}


@given(connector_ids, tool_names, connector_ids, tool_names)
def test_distinct_tools_never_share_a_public_name(c1: str, t1: str, c2: str, t2: str) -> None:
    """T17, our choice: the name codec is injective (short forms differ by a 64-bit hash)."""
    if (c1, t1) != (c2, t2):
        assert public_name(c1, t1) != public_name(c2, t2)


@given(connector_ids, tool_names)
def test_every_public_name_is_a_valid_name_of_at_most_64_characters(connector_id: str, name: str) -> None:
    """Spec (tool names: 1-128 of [A-Za-z0-9_.-]) and our 64-character cap for clients that enforce one."""
    public = public_name(connector_id, name)
    assert SPEC_NAME.fullmatch(public)
    assert public.startswith(connector_id + "__")
    assert public_name(connector_id, name) == public  # deterministic


def test_a_short_well_formed_name_is_kept_verbatim_behind_its_connector() -> None:
    """Our choice: `<connector-id>__<tool>` for everything that fits."""
    assert public_name("git", "git_status") == "git__git_status"


def test_a_long_name_gets_a_deterministic_short_form() -> None:
    """Our choice: names over 64 characters keep a readable prefix and a hash suffix."""
    long_name = "x" * 100
    public = public_name("svc", long_name)
    assert len(public) == MAX_PUBLIC_NAME_LENGTH
    assert public.startswith("svc__xxxx")
    assert public != public_name("svc", long_name + "y")


def test_the_catalog_lists_in_public_name_order_and_pages_by_cursor() -> None:
    """Spec: lists SHOULD be in a deterministic order; pagination by opaque cursor."""
    catalog = Catalog()
    catalog.replace_connector("b", tools_listing([tool(f"t{i:02}") for i in range(5)]))
    catalog.replace_connector("a", tools_listing([tool("z"), tool("y")]))
    names: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = catalog.tools.page(cursor, 3)
        names.extend(str(item["name"]) for item in page)
        if cursor is None:
            break
    assert names == sorted(names)
    assert names[:2] == ["a__y", "a__z"]
    assert len(names) == 7


def test_paging_stays_consistent_when_tools_are_added_between_pages() -> None:
    """Our choice: keyset cursors never repeat or skip a tool that existed on both pages."""
    catalog = Catalog()
    catalog.replace_connector("c", tools_listing([tool(f"t{i}") for i in range(6)]))
    first, cursor = catalog.tools.page(None, 3)
    catalog.replace_connector("a", tools_listing([tool("new")]))  # sorts before every page-1 name
    second, _ = catalog.tools.page(cursor, 10)
    assert {item["name"] for item in first}.isdisjoint({item["name"] for item in second})
    assert [item["name"] for item in second] == ["c__t3", "c__t4", "c__t5"]


def test_a_forged_cursor_is_rejected() -> None:
    """Spec: an invalid cursor is an invalid-params error (mapped at the front door)."""
    with pytest.raises(InvalidCursorError):
        Catalog().tools.page("%%%not-base64%%%", 10)


def test_a_public_definition_carries_the_public_name_and_the_rest_unchanged() -> None:
    """Our choice: only the name is rewritten; schema, annotations and description pass as they are."""
    catalog = Catalog()
    original = tool("read", description="Read a file", annotations={"readOnlyHint": True})
    catalog.replace_connector("fs", tools_listing([original]))
    page, _ = catalog.tools.page(None, 10)
    assert page == [{**original, "name": "fs__read"}]
    resolved = catalog.resolve("fs__read")
    assert (resolved.connector_id, resolved.downstream_name) == ("fs", "read")


def test_refreshes_report_added_changed_and_removed_tools_and_notify_listeners() -> None:
    """Our choice: a change is computed per tool from the SHA-256 of its canonical definition."""
    seen: list[CatalogChange] = []
    catalog = Catalog(listeners=[seen.append])
    catalog.replace_connector("s", tools_listing([tool("a"), tool("b")]))
    unchanged, *_ = catalog.replace_connector("s", tools_listing([tool("b"), tool("a")]))
    changed, *others = catalog.replace_connector(
        "s", tools_listing([tool("a", description="now different"), tool("c")])
    )
    assert unchanged.is_empty
    assert all(other.is_empty for other in others)
    assert (changed.added, changed.changed, changed.removed) == (("s__c",), ("s__a",), ("s__b",))
    assert len(seen) == 2  # the no-op refresh notified nobody


def test_the_definition_digest_ignores_key_order_but_not_content() -> None:
    """RFC 8785 canonical JSON: key order is not content."""
    first = {"name": "a", "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}}}
    reordered = {"inputSchema": {"properties": {"x": {"type": "string"}}, "type": "object"}, "name": "a"}
    assert definition_sha256(first) == definition_sha256(reordered)
    assert definition_sha256(first) != definition_sha256({**first, "description": "x"})


_json_text = st.text(
    alphabet=st.one_of(st.characters(codec=None), st.sampled_from('"\\\b\f\n\r\t\x00\x1f\ue000\uffff\U0001f600\ud800')),
    max_size=8,
)
_json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**60), max_value=2**60),
        st.floats(),
        _json_text,
        st.sampled_from(["1.5", ":1.5", "a,2e3"]),
    ),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_json_text, children, max_size=4)),
    max_leaves=12,
)


def _jcs_sha256(definition: dict[str, Any]) -> str:
    try:
        canonical = rfc8785.dumps(definition)
    except rfc8785.CanonicalizationError:
        canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest()


@settings(max_examples=500)
@given(st.dictionaries(_json_text, _json_values, max_size=5))
def test_the_definition_digest_is_the_rfc8785_digest(definition: dict[str, Any]) -> None:
    """RFC 8785 (mandated by issue 11 §1: pins are digests of the canonical JSON); our choice to compute it from
    the standard library's JSON where that is the same text (floats, surrogates and characters past U+D7FF take
    `rfc8785`): every digest pinned before must stay the same."""
    try:
        expected = _jcs_sha256(definition)
    except (UnicodeEncodeError, TypeError) as refused:
        with pytest.raises(type(refused)):
            definition_sha256(definition)
        return
    assert definition_sha256(definition) == expected


def test_many_connectors_arriving_one_by_one_keep_one_sorted_catalog() -> None:
    """Our choice (issue 12): a section edits copies of its sorted lists for a small change instead of re-sorting;
    pages and lookups must be those of a full sort, and an earlier snapshot's list is never edited."""
    catalog = Catalog()
    for number in (5, 1, 9, 3, 7, 0, 8, 2, 6, 4):
        catalog.replace_connector(f"c{number}", tools_listing([tool(f"t{index}") for index in range(20)]))
    before = list(catalog.tools.entries())
    held = catalog.tools.entries()
    catalog.replace_connector("c3", tools_listing([tool("t0", description="changed"), tool("new")]))
    assert list(held) == before
    names = [entry.public_name for entry in catalog.tools.entries()]
    assert names == sorted(names)
    assert len(names) == 9 * 20 + 2
    assert catalog.tools.get("c3__t0") is not None
    assert catalog.tools.get("c3__t5") is None
    page, cursor = catalog.tools.page(None, 100)
    rest, last = catalog.tools.page(cursor, 100)
    assert [item["name"] for item in page + rest] == names
    assert last is None


def test_a_tool_whose_short_form_equals_another_tools_name_is_refused_not_shadowed() -> None:
    """T17, our choice: the first tool keeps the name; the colliding one is refused and reported."""
    long_name = "y" * 80
    shadow = public_name("s", long_name).removeprefix("s__")
    change, *_ = Catalog().replace_connector("s", tools_listing([tool(shadow), tool(long_name)]))
    assert change.added == (f"s__{shadow}",)
    assert change.rejected == (long_name,)


def test_the_input_schema_lookup_answers_by_public_name_and_never_raises() -> None:
    """The SDK's Mcp-Param-* header check asks for a schema on every call; unknown tools answer None."""
    catalog = Catalog()
    schema = {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}
    catalog.replace_connector("cloud", tools_listing([{"name": "deploy", "inputSchema": schema}]))
    assert catalog.input_schema("cloud__deploy") == schema
    assert catalog.input_schema("cloud__missing") is None
