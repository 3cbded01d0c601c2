"""Argument conditions of approval rules, and why a value the rule cannot judge holds the call (T19).

The hub forwards arguments as the agent sent them and does not validate them against the tool's schema;
servers built on pydantic (FastMCP and others) coerce `"true"` to true and `"5000"` to 5000. A condition
answering "no" to a value of the wrong JSON type would therefore let `{"force": "true"}` past a
`force == true` rule. Our choice: such a value holds the call (fail closed).
"""

from __future__ import annotations

from typing import Any

import pytest

from mcp_hub.approvals.policy import ApprovalPolicy, RuleMatch, condition_holds, describe_condition
from mcp_hub.approvals.subject import HeldSubject
from mcp_hub.config.connectors import ConnectorSpec
from mcp_hub.config.settings import ApprovalCondition, ApprovalRule
from mcp_hub.domain import ConnectorId


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


@pytest.mark.parametrize(
    ("condition", "arguments", "said"),
    [
        pytest.param(when("amount", ">", 1000), {"amount": 5000}, "argument `amount` = 5000 > 1000", id="compared"),
        pytest.param(
            when("path", "matches", r"^/etc/"),
            {"path": "/etc/passwd"},
            'argument `path` = "/etc/passwd" matches /^/etc//',
            id="pattern",
        ),
        pytest.param(
            when("force", "==", True),
            {"force": "true"},
            'argument `force` is "true", which the rule cannot compare with true: held',
            id="unjudged",
        ),
        pytest.param(when("branch", "!=", "main"), {}, 'argument `branch` is absent, so it is not "main"', id="absent"),
        pytest.param(when("token", "exists"), {"token": None}, "argument `token` is present", id="exists"),
        pytest.param(
            when("text", "matches", "^x"),
            {"text": "x" * 500},
            f'argument `text` = "{"x" * 119}…',
            id="long-value-cut",
        ),
    ],
)
def test_a_held_condition_says_which_argument_and_value_matched(
    condition: ApprovalCondition, arguments: dict[str, Any], said: str
) -> None:
    """Issue 13 §3, our wording: the approver's page shows the matched condition with the argument's value."""
    assert describe_condition(condition, arguments).startswith(said)


def test_the_policy_explains_each_rule_that_holds_a_call_and_only_those() -> None:
    """Issue 13 §3, our choice: each holding rule with its glob, agents and conditions; a rule whose condition
    fails is not named; a connector's sensitive_tools say which glob named the tool."""
    rules = [
        ApprovalRule.model_validate(
            {
                "name": "big-payments",
                "tools": ["bank__*"],
                "agents": ["payer"],
                "when": [{"field": "amount", "op": ">", "value": 1000}],
            }
        ),
        ApprovalRule.model_validate({"name": "all-transfers", "tools": ["bank__transfer"], "connectors": ["bank"]}),
        ApprovalRule.model_validate(
            {"name": "only-to-abroad", "tools": ["bank__*"], "when": [{"field": "abroad", "op": "==", "value": True}]}
        ),
    ]
    bank = ConnectorSpec.model_validate(
        {"id": "bank", "transport": "stdio", "command": "bank", "sensitive_tools": ["trans*"]}
    )
    policy = ApprovalPolicy(rules, [bank])
    subject = HeldSubject("tools/call", "bank__transfer", ConnectorId("bank"), "transfer", "0" * 64, "")

    explained = policy.explain("payer", subject, {"amount": 5000, "abroad": False})
    required = policy.requirement("payer", subject, {"amount": 5000, "abroad": False})

    assert required is not None
    assert required.matches == explained  # what the service records when it holds the call
    assert [match.rule for match in explained] == list(required.rules)
    assert explained == (
        RuleMatch(
            "big-payments",
            (
                "tool `bank__transfer` matches `bank__*`",
                "agent `payer` is one of the rule's agents",
                "argument `amount` = 5000 > 1000",
            ),
        ),
        RuleMatch(
            "all-transfers",
            (
                "tool `bank__transfer` matches `bank__transfer`",
                "connector `bank` is one of the rule's connectors",
                "the rule holds every such call, whatever the arguments",
            ),
        ),
        RuleMatch(
            "sensitive:bank",
            ("connector `bank` lists `trans*` in its sensitive_tools, which matches its tool `transfer`",),
        ),
    )
