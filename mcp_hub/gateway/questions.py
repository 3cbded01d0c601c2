"""Questions a downstream asks the user during a request, put to the caller in the caller's era (issue 9 §4).

A downstream asks in its era (https://modelcontextprotocol.io/specification/2025-11-25/client/elicitation,
.../client/sampling, .../client/roots; https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/mrtr):

- A 2025-11-25 downstream asks mid-call (a server-to-client request). To a 2025-11-25 caller the question is
  relayed on its request's stream (`CallerRelay`). For a 2026-07-28 caller the call runs on in this replica (an
  `Exchange`): the caller's request answers `input_required`, and its retry carries the answer.
- A 2026-07-28 downstream answers `input_required`. A 2025-11-25 caller is asked request by request, and the
  hub retries the downstream itself. A 2026-07-28 caller gets it as it is, the downstream's `requestState`
  travelling sealed inside the hub's own.

Only what the caller declared may be asked (`elicitation` with its `form`/`url` modes, `sampling` and its
`tools`, `roots`): a 2026-07-28 downstream sees the caller's capabilities on the request itself; a 2025-11-25 downstream
that asks anyway is refused with `-32021` and the caller's request fails with the same error
(`MissingCapabilityError`). Every `requestState` the hub hands out is sealed, bound and single use
(`mcp_hub.gateway.request_state`).

A 2025-11-25 downstream may also refuse a call with `-32042` (URLElicitationRequiredError: the user must first
visit a URL). A 2025-11-25 caller gets that error whole; 2026-07-28 retired the code, so a 2026-07-28 caller gets
the URL elicitations as an `input_required` result instead (`-32021` if it did not declare URL elicitation), and
its retry calls the downstream again, as a 2025-11-25 client would after the user finished; a retry that
declines or cancels is not sent on (-32602).

An `Exchange` lives in the replica that holds the downstream call: a retry that reaches another replica is told
the request is gone (call again). `max_open` and `max_open_per_principal` bound them (threat T28); an unanswered
question is refused to the downstream after `answer_seconds`.
"""

from __future__ import annotations

import itertools
import secrets
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import anyio.abc
import structlog
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp_types.jsonrpc import INVALID_REQUEST, MISSING_REQUIRED_CLIENT_CAPABILITY, URL_ELICITATION_REQUIRED
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_hub.config.settings import QuestionsSection
from mcp_hub.domain import ConnectorId
from mcp_hub.downstream.relay import Relay
from mcp_hub.errors import (
    DownstreamError,
    DownstreamRejectedError,
    InvalidInputError,
    MissingCapabilityError,
    QuestionRefusedError,
)
from mcp_hub.gateway.context import HubContext
from mcp_hub.gateway.relaying import (
    QUESTION_METHODS,
    RELAYED_CAPABILITIES,
    CallerRelay,
    LogLevels,
    client_capabilities,
    declares,
    question_from,
    required_capability,
)
from mcp_hub.gateway.request_state import RequestStates

logger = structlog.get_logger(__name__)

Send = Callable[[Relay, Mapping[str, Any], ProgressFnT | None], Awaitable[dict[str, Any]]]
"""Forwards the request once: with this relay, these extra params (`inputResponses`, `requestState` for the
downstream), and this progress callback."""


def _input_requests(result: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    requests = result.get("inputRequests")
    if not isinstance(requests, Mapping):
        return {}
    return {
        str(key): cast("Mapping[str, Any]", value)
        for key, value in cast("Mapping[str, Any]", requests).items()
        if isinstance(value, Mapping)
    }


def _missing(capabilities: Mapping[str, Any], requests: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    for request in requests.values():
        params = request.get("params")
        given: Mapping[str, Any] = cast("Mapping[str, Any]", params) if isinstance(params, Mapping) else {}
        required = required_capability(str(request.get("method")), given)
        if not declares(capabilities, required):
            return required
    return None


def _declined(response: object) -> bool:
    return isinstance(response, Mapping) and cast("Mapping[str, Any]", response).get("action") in ("decline", "cancel")


def _is_input_required(result: Mapping[str, Any]) -> bool:
    return result.get("resultType") == "input_required"


@dataclass
class _Question:
    key: str
    method: str
    params: Mapping[str, Any]
    answered: anyio.Event = field(default_factory=anyio.Event)
    answer: Any = None


@dataclass(frozen=True, slots=True)
class _Finished:
    result: dict[str, Any] | None
    error: BaseException | None


class Exchange:
    """A forwarded request of a 2026-07-28 caller whose 2025-11-25 downstream may ask mid-call.

    The downstream call runs in the hub's task group, not the caller's request: when it asks, the caller's request
    returns `input_required` and the call waits for the retry that brings the answer.
    """

    def __init__(self, principal_key: str | None, capabilities: Mapping[str, Any], log_level: str | None) -> None:
        self.id = secrets.token_urlsafe(24)
        self.principal_key = principal_key
        self._capabilities = dict(capabilities)
        self._log_level = log_level
        self._numbers = itertools.count(1)
        self._outcomes_in, self._outcomes = anyio.create_memory_object_stream[_Question | _Finished](16)
        self._asked: dict[str, _Question] = {}
        self._ctx: HubContext | None = None
        self._levels_ctx_relay: CallerRelay | None = None
        self.cancel_scope = anyio.CancelScope()
        self.missing: dict[str, Any] | None = None
        self.abandoned = False
        """The caller did not come back in time: whatever the downstream asks now is refused at once."""

    # --- the downstream's side (a `Relay`) ---------------------------------------------------------------------

    @property
    def client_capabilities(self) -> Mapping[str, Any]:
        return {key: value for key, value in self._capabilities.items() if key in RELAYED_CAPABILITIES}

    @property
    def log_level(self) -> str | None:
        return self._log_level

    async def log(self, connector_id: ConnectorId, params: Mapping[str, Any]) -> None:
        if self._levels_ctx_relay is not None:  # between the caller's requests, entries have nowhere to go
            await self._levels_ctx_relay.log(connector_id, params)

    async def ask(self, connector_id: ConnectorId, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        required = required_capability(method, params)
        if method not in QUESTION_METHODS or not declares(self._capabilities, required):
            self.missing = required
            raise QuestionRefusedError(MISSING_REQUIRED_CLIENT_CAPABILITY, "the client did not declare the capability")
        if self.abandoned:
            raise QuestionRefusedError(INVALID_REQUEST, "the client did not answer in time")
        question = _Question(f"q{next(self._numbers)}", method, params)
        self._asked[question.key] = question
        await self._outcomes_in.send(question)
        await question.answered.wait()
        if question.answer is None:
            raise QuestionRefusedError(INVALID_REQUEST, "the client did not answer")
        return cast("dict[str, Any]", question.answer)

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        ctx = self._ctx
        if ctx is not None and progress_token_from_params(ctx.params) is not None:
            await ctx.session.report_progress(progress, total, message)

    # --- the caller's side -------------------------------------------------------------------------------------

    async def run(self, send: Send) -> None:
        with self.cancel_scope:
            try:
                result = await send(self, {}, self.progress)
            except Exception as exc:  # noqa: BLE001 - handed to the caller's request, which raises it there
                await self._outcomes_in.send(_Finished(None, exc))
            else:
                await self._outcomes_in.send(_Finished(result, None))

    def answer(self, responses: Mapping[str, Any]) -> None:
        for key, question in list(self._asked.items()):
            if key in responses:
                question.answer = responses[key]
                question.answered.set()
                del self._asked[key]

    def close(self) -> None:
        self._outcomes_in.close()
        self._outcomes.close()

    def abandon(self) -> None:
        """Nobody will answer: every open question and every later one is refused; the call runs to its end."""
        self.abandoned = True
        for question in self._asked.values():
            question.answered.set()
        self._asked.clear()

    def give_up(self) -> None:
        """Nobody wants the outcome: `abandon`, and cancel the call."""
        self.abandon()
        self.cancel_scope.cancel()

    async def next_outcome(self, ctx: HubContext, levels: LogLevels) -> _Question | _Finished:
        self._ctx = ctx
        self._levels_ctx_relay = CallerRelay(ctx, levels)
        try:
            return await self._outcomes.receive()
        finally:
            self._ctx = None
            self._levels_ctx_relay = None


class Questions:
    """Runs forwarded requests so that their downstream's questions reach the caller, in both eras."""

    def __init__(self, settings: QuestionsSection, states: RequestStates, levels: LogLevels) -> None:
        self._settings = settings
        self._states = states
        self._levels = levels
        self._exchanges: dict[str, Exchange] = {}
        self._open: Counter[str | None] = Counter()
        self._tasks: anyio.abc.TaskGroup | None = None

    @property
    def open_exchanges(self) -> int:
        """Requests of this replica waiting for a 2026-07-28 caller's answer."""
        return len(self._exchanges)

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[Questions]:
        async with self._states.codec.running(), anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                yield self
            finally:
                for exchange in self._exchanges.values():
                    exchange.give_up()
                tasks.cancel_scope.cancel()
                self._tasks = None

    async def forward(
        self,
        ctx: HubContext,
        principal_key: str | None,
        connector_id: ConnectorId | None,
        connector_era: str | None,
        send: Send,
    ) -> dict[str, Any]:
        """Forward a `tools/call`, `prompts/get` or `resources/read` to `connector_id` (which speaks
        `connector_era`) and see its questions answered."""
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return await self._for_a_session(ctx, connector_id, send)
        params = ctx.params or {}
        capabilities = client_capabilities(ctx)
        on_progress = self._progress_of(ctx)
        if params.get("requestState") is not None:
            state = await self._states.redeem(params["requestState"])
            sent = params.get("inputResponses")
            responses: Mapping[str, Any] = cast("Mapping[str, Any]", sent) if isinstance(sent, Mapping) else {}
            if state.exchange is not None:
                exchange = self._exchanges.get(state.exchange)
                if exchange is None or exchange.principal_key != principal_key:
                    raise InvalidInputError("the request this answers is no longer waiting (call again)")
                exchange.answer(responses)
                return await self._next(exchange, ctx)
            if state.downstream_state is not None or connector_era in MODERN_PROTOCOL_VERSIONS:
                extra = {"inputResponses": dict(responses), "requestState": state.downstream_state}
                result = await _send(send, CallerRelay(ctx, self._levels), _present(extra), on_progress)
                return self._pass_on(result, capabilities)
            # The retry after URL elicitations the hub asked for a 2025-11-25 downstream's -32042: call again.
            if any(_declined(response) for response in responses.values()):
                raise InvalidInputError("the user declined what the downstream requires first: the call was not made")
        asks_mid_call = connector_era is not None and connector_era not in MODERN_PROTOCOL_VERSIONS
        try:
            if asks_mid_call and any(name in capabilities for name in RELAYED_CAPABILITIES):
                return await self._start_exchange(ctx, principal_key, capabilities, send)
            # Answers sent unasked (no `requestState`) go to a 2026-07-28 downstream as they came: it judges them
            # as it would a direct client's (MRTR: "ignore what it does not recognize"); nothing of the hub's is
            # in them.
            sent = params.get("inputResponses")
            unasked: dict[str, Any] = {}
            if isinstance(sent, Mapping) and not asks_mid_call:
                unasked["inputResponses"] = dict(cast("Mapping[str, Any]", sent))
            result = await _send(send, CallerRelay(ctx, self._levels), unasked, on_progress)
        except DownstreamRejectedError as exc:
            if exc.code != URL_ELICITATION_REQUIRED:
                raise
            return self._url_elicitations(exc, capabilities)
        return self._pass_on(result, capabilities)

    def _url_elicitations(self, exc: DownstreamRejectedError, capabilities: Mapping[str, Any]) -> dict[str, Any]:
        """A 2025-11-25 downstream's -32042 for a 2026-07-28 caller: its URL elicitations as `input_required`."""
        data: object = exc.data
        listed: object = cast("Mapping[str, Any]", data).get("elicitations") if isinstance(data, Mapping) else None
        elicitations = [
            dict(cast("Mapping[str, Any]", item))
            for item in cast("list[object]", listed if isinstance(listed, list) else [])
            if isinstance(item, Mapping)
        ]
        if not elicitations:
            raise exc
        requests = {
            f"url-{number}": {"method": "elicitation/create", "params": {**params, "mode": "url"}}
            for number, params in enumerate(elicitations, start=1)
        }
        missing = _missing(capabilities, requests)
        if missing is not None:
            raise MissingCapabilityError("Missing required client capability", missing)
        return {"resultType": "input_required", "inputRequests": requests, "requestState": self._states.mint()}

    def _progress_of(self, ctx: HubContext) -> ProgressFnT | None:
        if progress_token_from_params(ctx.params) is None:
            return None

        async def relay_progress(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        return relay_progress

    def _pass_on(self, result: dict[str, Any], capabilities: Mapping[str, Any]) -> dict[str, Any]:
        """A result for a 2026-07-28 caller: a downstream's `input_required` goes out under the hub's state."""
        if not _is_input_required(result):
            return result
        requests = _input_requests(result)
        missing = _missing(capabilities, requests)
        if missing is not None:
            raise MissingCapabilityError("Missing required client capability", missing)
        downstream_state = result.get("requestState")
        passed: dict[str, Any] = {
            "resultType": "input_required",
            "requestState": self._states.mint(
                downstream_state=downstream_state if isinstance(downstream_state, str) else None
            ),
        }
        if requests:
            passed["inputRequests"] = self._levels.secrets.scrub_json(requests)
        return passed

    async def _start_exchange(
        self,
        ctx: HubContext,
        principal_key: str | None,
        capabilities: Mapping[str, Any],
        send: Send,
    ) -> dict[str, Any]:
        if self._tasks is None:
            raise RuntimeError("Questions is not running")
        if len(self._exchanges) >= self._settings.max_open or (
            self._open[principal_key] >= self._settings.max_open_per_principal
        ):
            raise InvalidInputError("too many requests are waiting for answers already; answer or cancel them first")
        exchange = Exchange(principal_key, capabilities, self._levels.level_of(ctx))
        self._exchanges[exchange.id] = exchange
        self._open[principal_key] += 1

        async def run() -> None:
            try:
                await exchange.run(send)
            finally:
                self._forget(exchange)

        self._tasks.start_soon(run)
        return await self._next(exchange, ctx)

    def _forget(self, exchange: Exchange) -> None:
        exchange.close()
        if self._exchanges.pop(exchange.id, None) is not None:
            self._open[exchange.principal_key] -= 1
            if self._open[exchange.principal_key] <= 0:
                del self._open[exchange.principal_key]

    async def _next(self, exchange: Exchange, ctx: HubContext) -> dict[str, Any]:
        """Wait, on the caller's request, for the exchange's next question or its end."""
        try:
            outcome = await exchange.next_outcome(ctx, self._levels)
        except BaseException:
            # The caller went away while the call ran: nobody will come back for it.
            exchange.give_up()
            raise
        if isinstance(outcome, _Finished):
            self._forget(exchange)
            if exchange.missing is not None:
                raise MissingCapabilityError("Missing required client capability", exchange.missing)
            if outcome.error is not None:
                raise outcome.error
            assert outcome.result is not None
            return outcome.result
        self._expire_later(exchange, outcome)
        return {
            "resultType": "input_required",
            "inputRequests": {
                outcome.key: {"method": outcome.method, "params": self._levels.secrets.scrub_json(dict(outcome.params))}
            },
            "requestState": self._states.mint(exchange=exchange.id),
        }

    def _expire_later(self, exchange: Exchange, question: _Question) -> None:
        """Refuse the question to the downstream if the caller has not answered within `answer_seconds`."""
        assert self._tasks is not None

        async def expire() -> None:
            with anyio.move_on_after(self._settings.answer_seconds):
                await question.answered.wait()
                return
            logger.info("a question went unanswered", exchange=exchange.id)
            exchange.abandon()

        self._tasks.start_soon(expire)

    async def _for_a_session(self, ctx: HubContext, connector_id: ConnectorId | None, send: Send) -> dict[str, Any]:
        """A 2025-11-25 caller: questions go on its own stream; a downstream's `input_required` is answered here."""
        relay = CallerRelay(ctx, self._levels)
        on_progress = self._progress_of(ctx)
        result = await _send(send, relay, {}, on_progress)
        for _ in range(self._settings.max_rounds):
            if not _is_input_required(result):
                return result
            requests = _input_requests(result)
            missing = _missing(relay.declared, requests)
            if missing is not None:
                raise MissingCapabilityError("Missing required client capability", missing)
            answers: dict[str, Any] = {}
            for key, request in requests.items():
                request_params = request.get("params")
                given: Mapping[str, Any] = (
                    cast("Mapping[str, Any]", request_params) if isinstance(request_params, Mapping) else {}
                )
                question = question_from(connector_id, given) if connector_id is not None else dict(given)
                question = self._levels.secrets.scrub_json(question)
                answers[key] = await relay.ask_caller(str(request.get("method")), question)
            state = result.get("requestState")
            extra = {"inputResponses": answers, "requestState": state if isinstance(state, str) else None}
            result = await _send(send, relay, _present(extra), on_progress)
        raise InvalidInputError(f"the downstream asked more than {self._settings.max_rounds} rounds of questions")


async def _send(
    send: Send, relay: CallerRelay, extra: Mapping[str, Any], on_progress: ProgressFnT | None
) -> dict[str, Any]:
    """`send` once; if the downstream asked for a capability the caller lacks, the caller gets -32021, whatever
    the downstream made of the refusal."""
    try:
        result = await send(relay, extra, on_progress)
    except DownstreamError:
        if relay.missing is not None:
            raise MissingCapabilityError("Missing required client capability", relay.missing) from None
        raise
    if relay.missing is not None:
        raise MissingCapabilityError("Missing required client capability", relay.missing)
    return result


def _present(extra: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in extra.items() if value is not None}
