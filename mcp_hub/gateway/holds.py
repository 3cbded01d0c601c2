"""Prompt gets and resource reads that an approval rule names are held like tool calls (issue 9 §7).

The same policy, digest binding, exactly-once run and audit as a held tool call (`mcp_hub.approvals.service`),
answered the way a non-tool request can be: the approved request's own result, or a JSON-RPC error
(`HeldRequestError`, -32003 with `data.error = approval_required` and the action: pending with its link,
denied, expired, not run or failed). Getting or reading again with the same arguments collects the outcome.
The Tasks extension covers `tools/call` only, so these requests always take the hold path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.shared.jsonrpc_dispatcher import progress_token_from_params

from mcp_hub.approvals.presentation import APPROVAL_META_KEY
from mcp_hub.approvals.service import ApprovalService, HeldCall
from mcp_hub.approvals.subject import HeldSubject
from mcp_hub.errors import HeldRequestError
from mcp_hub.gateway.caller import Asking
from mcp_hub.gateway.context import HubContext


class Holds:
    """Applies approval rules to prompt gets and resource reads."""

    def __init__(self, approvals: ApprovalService | None) -> None:
        self._approvals = approvals

    async def answer(
        self,
        ctx: HubContext,
        asking: Asking,
        subject: HeldSubject,
        arguments: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        """None when no rule holds the request (forward it as usual); else the approved request's result, in
        the downstream's form; `HeldRequestError` while it has none."""
        if self._approvals is None:
            return None
        requirement = await self._approvals.requirement(asking.principal, subject, arguments)
        if requirement is None:
            return None
        if asking.principal is None or asking.access is None:
            # Fail closed: an approval is bound to an agent, and without auth there is none.
            raise HeldRequestError(
                f"{subject.public_name} needs a human's approval, which needs an authenticated agent: turn [auth] on"
            )

        async def relay_progress(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        wants_progress = progress_token_from_params(ctx.params) is not None
        result = await self._approvals.hold(
            HeldCall(
                principal=asking.principal,
                access=asking.access,
                subject=subject,
                arguments=dict(arguments),
                requirement=requirement,
                session=asking.caller.session,
                report_progress=relay_progress if wants_progress else None,
            )
        )
        if result.get("isError") is True:
            raise HeldRequestError(_text_of(result), _approval_of(result))
        return result


def _text_of(result: Mapping[str, Any]) -> str:
    content = result.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict):
        text = content[0].get("text")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        if isinstance(text, str):
            return text
    return "the held request has no result"


def _approval_of(result: Mapping[str, Any]) -> Mapping[str, Any] | None:
    meta = result.get("_meta")
    if isinstance(meta, dict):
        approval = meta.get(APPROVAL_META_KEY)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        if isinstance(approval, dict):
            return approval  # pyright: ignore[reportUnknownVariableType]
    return None
