"""The audit chain's canonical JSON (`mcp_hub.db.audit_chain`): the fast encoding is RFC 8785 byte for byte, so a
chain hashed before it verifies after it (threat T24)."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_hub.db.audit_chain import HASHED_COLUMNS, _canonical  # pyright: ignore[reportPrivateUsage]

_values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),  # latencies: where the fast path applies
    st.text(st.characters(codec=None, exclude_categories=())),  # every code point, lone surrogates included
    st.text(st.characters(max_codepoint=0x7F)),
)
_rows = st.dictionaries(st.sampled_from(("v", *HASHED_COLUMNS)), _values)


def _rfc8785(document: dict[str, Any]) -> bytes | None:
    try:
        return rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError):
        return None


@settings(max_examples=3000, deadline=None)
@given(_rows)
def test_the_canonical_text_of_a_row_is_rfc_8785(document: dict[str, Any]) -> None:
    expected = _rfc8785(document)
    if expected is None:
        with pytest.raises((rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError)):
            _canonical(document)
    else:
        assert _canonical(document) == expected


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 5.0, 1.5, 0.1, 1e-4, 1e-5, 1e-7, 123456.789, 9007199254740991.0, 2.0**53, 2.0**60, 1e16, 1e20, 1e21,
     1e22, -2.5e-8, 5e-324, 1.7976931348623157e308],
)  # fmt: skip
def test_floats_at_the_notation_boundaries(value: float) -> None:
    document = {"latency_ms": value, "client": 'a "b"\n\x00\x1f\x7f é \U0001f600'}
    assert _canonical(document) == rfc8785.dumps(document)
