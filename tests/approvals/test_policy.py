"""Argument conditions of approval rules, and why a value the rule cannot judge holds the call (T19).

The hub forwards arguments as the agent sent them and does not validate them against the tool's schema;
servers built on pydantic (FastMCP and others) coerce `"true"` to true and `"5000"` to 5000. A condition
answering "no" to a value of the wrong JSON type would therefore let `{"force": "true"}` past a
`force == true` rule. Our choice: such a value holds the call (fail closed).
"""

from __future__ import annotations

from typing import Any

import pytest

from mcp_hub.approvals.policy import condition_holds
from mcp_hub.config.settings import ApprovalCondition


def when(field: str, op: str, value: Any = None) -> ApprovalCondition:
    return ApprovalCondition.model_validate({"field": field, "op": op, "value": value})


@pytest.mark.parametrize(
    ("condition", "arguments", "held"),
    [
        pytest.param(when("force", "==", True), {"force": True}, True, id="equal"),
        pytest.param(when("force", "==", True), {"force": False}, False, id="same-type-different"),
        pytest.param(when("force", "==", True), {"force": "true"}, True, id="string-for-bool"),
        pytest.param(when("force", "==", True), {"force": 1}, True, id="number-for-bool"),
        pytest.param(when("force", "==", True), {"force": None}, True, id="null-for-bool"),
        pytest.param(when("force", "==", True), {}, False, id="missing"),
        pytest.param(when("branch", "==", "main"), {"branch": "dev"}, False, id="other-string"),
        pytest.param(when("branch", "==", "main"), {"branch": ["main"]}, True, id="list-for-string"),
        pytest.param(when("amount", "==", 5), {"amount": 5.0}, True, id="float-equal-int"),
        pytest.param(when("amount", ">", 1000), {"amount": 5000}, True, id="above"),
        pytest.param(when("amount", ">", 1000), {"amount": 10}, False, id="below"),
        pytest.param(when("amount", ">", 1000), {"amount": "5000"}, True, id="numeric-string"),
        pytest.param(when("amount", ">", 1000), {"amount": "10"}, True, id="any-string-cannot-be-judged"),
        pytest.param(when("amount", "<=", 0), {"amount": True}, True, id="bool-is-not-a-number"),
        pytest.param(when("amount", ">", 1000), {}, False, id="missing-number"),
        pytest.param(when("path", "matches", r"^/etc/"), {"path": "/etc/passwd"}, True, id="matches"),
        pytest.param(when("path", "matches", r"^/etc/"), {"path": "/srv/www/x"}, False, id="does-not-match"),
        pytest.param(when("path", "matches", r"^/etc/"), {"path": ["/etc/passwd"]}, True, id="list-for-pattern"),
        pytest.param(when("branch", "!=", "main"), {"branch": "main"}, False, id="not-equal-false"),
        pytest.param(when("branch", "!=", "main"), {}, True, id="missing-is-not-equal"),
        pytest.param(when("target.env", "==", "prod"), {"target": {"env": "prod"}}, True, id="dotted-path"),
        pytest.param(when("target.env", "==", "prod"), {"target": "prod"}, False, id="dotted-path-through-scalar"),
        pytest.param(when("token", "exists"), {"token": None}, True, id="exists"),
    ],
)
def test_a_condition_holds_the_call_when_it_matches_or_cannot_judge_the_value(
    condition: ApprovalCondition, arguments: dict[str, Any], held: bool
) -> None:
    assert condition_holds(condition, arguments) is held
