"""Keeping the catalog in step with the downstream servers, through the pins (issue 11 §1-§4, threat T16).

What a connector lists is held here as it came; what reaches the in-memory catalog (which tells its listeners,
and so every client) is only what the pins allow:

- a tool, prompt or resource template is offered when the downstream offers exactly its pinned digest (the
  `approved` row of `mcp_hub.db.pins`). Anything else is `pending` (not listed, not callable) until an admin
  approves it: a new name from a `trust = "review"` connector, any change of a pinned definition, and a name that
  disappeared and came back different (pins outlive removals). The previously approved version does not keep
  serving: the downstream no longer offers it, so a call would run the new code under the old description;
- from a `trust = "auto"` connector, a new or changed definition is accepted (recorded as decided by `auto`)
  unless `mcp_hub.catalog.review.inspect` flags it;
- with a lock file, a definition whose digest the lock names is accepted (by `lock`) and nothing else is
  offered, whatever the database says;
- oversize definitions, and names with hidden characters, are refused: never offered, never approvable.

Every new quarantine, acceptance and refusal is audited (the admin's decisions are audited where they are made:
`mcp-hub catalog approve|reject`). Decisions made elsewhere reach this process through `watch_decisions`, which
re-applies the held listings when the pins' generation moves. Listed resources are not pinned (data, not
instructions), but their descriptions are escaped like everything else (`Section`).

The tools are also recorded in `catalog_tools` (first and last sightings; `mcp-hub catalog` reads them). The
database writes are off the hot path: if one fails, serving carries on with the previous decisions and the
failure is logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import structlog
from sqlalchemy.exc import SQLAlchemyError

from mcp_hub.catalog.catalog import Catalog, definition_sha256, key_field, public_key
from mcp_hub.catalog.lock import PINNED_KINDS, CatalogLock
from mcp_hub.catalog.review import Limits, inspect
from mcp_hub.db.audit import AuditEvent
from mcp_hub.db.catalog import CatalogStore, ToolRecord
from mcp_hub.db.pins import Decisions, PinRecord, PinStore, Sighting
from mcp_hub.domain import AuditOutcome, CatalogKind, Clock, ConnectorId, ConnectorListing, PinStatus, utc_now
from mcp_hub.errors import HubError

logger = structlog.get_logger(__name__)

AuditSink = Callable[[AuditEvent], Awaitable[None]]

_AUDITED = {
    PinStatus.PENDING: AuditOutcome.DEFINITION_QUARANTINED,
    PinStatus.APPROVED: AuditOutcome.DEFINITION_ACCEPTED,
    PinStatus.REFUSED: AuditOutcome.DEFINITION_REFUSED,
}


@dataclass(frozen=True, slots=True)
class PinPolicy:
    """How the pins decide: each connector's trust (`review` unless named `auto`), the size caps, the lock."""

    auto: frozenset[ConnectorId] = frozenset()
    limits: Limits = field(default_factory=Limits)
    lock: CatalogLock | None = None


def audit_decision(record: PinRecord, outcome: AuditOutcome, by: str, at: Any) -> AuditEvent:
    """The audit row of one decision about one pinned definition."""
    detail = f"{record.kind} sha256={record.sha256}"
    if record.flags:
        detail += f"; flags: {'; '.join(record.flags)}"
    if record.reason:
        detail += f"; reason: {record.reason}"
    return AuditEvent(
        at=at,
        client=by,
        session=None,
        public_name=record.public_name,
        connector_id=record.connector_id,
        downstream_name=record.name,
        outcome=outcome,
        latency_ms=0.0,
        detail=detail[:2000],
        method="catalog/review",
    )


class _Listed:
    """A connector's last listing and the digests of its definitions, each computed once however often the
    listing is decided again (`rfc8785` is pure Python: hashing 10,000 definitions takes seconds)."""

    __slots__ = ("_digests", "listing", "persisted")

    def __init__(self, listing: ConnectorListing) -> None:
        self.listing = listing
        self._digests: dict[int, str] = {}
        self.persisted = False
        """Whether `catalog_tools` holds what this listing put in the catalog."""

    def digest(self, definition: Mapping[str, Any]) -> str:
        # Keyed by identity: the definitions are the listing's own (it keeps them alive), never edited.
        key = id(definition)
        found = self._digests.get(key)
        if found is None:
            found = self._digests[key] = definition_sha256(definition)
        return found


class CatalogSync:
    """The pool's `on_listing`: a connector listed everything it offers.

    Listings are applied in batches: whatever arrived while the previous batch was being applied is decided in
    one read of the pins, recorded in one transaction, put in the catalog in one go (so clients hear one
    list-changed for the batch) and persisted in one more. A hundred connectors starting together are a few
    batches, not a hundred rounds of transactions.
    """

    def __init__(
        self,
        catalog: Catalog,
        store: CatalogStore,
        pins: PinStore | None = None,
        *,
        policy: PinPolicy = PinPolicy(),
        audit: AuditSink | None = None,
        clock: Clock = utc_now,
    ) -> None:
        """Without `pins`, every definition is offered as listed (the `mcp-hub catalog --live` view)."""
        self._catalog = catalog
        self._store = store
        self._pins = pins
        self._policy = policy
        self._audit = audit
        self._clock = clock
        self._listings: dict[ConnectorId, _Listed] = {}
        self._due: dict[ConnectorId, None] = {}
        """Connectors whose last listing waits to be applied, in arrival order."""
        self._lock = anyio.Lock()
        self.applied = 0
        """How many listings have been applied (tests await a count instead of sleeping)."""
        self.batches = 0
        """How many batches applied them."""
        self._applied_event = anyio.Event()

    def set_policy(self, policy: PinPolicy) -> None:
        """Live connectors: a connector added or changed while the hub runs brings its own `trust`."""
        self._policy = policy

    async def connector_listed(self, connector_id: ConnectorId, listing: ConnectorListing) -> None:
        """Apply `listing`; returns once it is applied (by this call's batch or an earlier one)."""
        self._listings[connector_id] = _Listed(listing)
        await self._apply([connector_id])

    async def reapply(self, connectors: Iterable[ConnectorId] | None = None) -> None:
        """Decide again for the last listing of `connectors` (default: every connector), after decisions made
        elsewhere."""
        wanted = list(self._listings) if connectors is None else sorted(connectors)
        await self._apply([connector_id for connector_id in wanted if connector_id in self._listings])

    async def wait_applied(self, count: int) -> None:
        """Return once `count` listings have been applied since the hub started."""
        while self.applied < count:
            await self._applied_event.wait()

    async def watch_decisions(self, every_seconds: float) -> None:
        """Re-apply whenever a review decision is made in another process (`mcp-hub catalog approve`)."""
        if self._pins is None:
            return
        # Per connector: the decisions this process records itself (a `trust = "auto"` connector's acceptances)
        # move only their connector's generation, so federating N connectors re-applies each once, not all N
        # every poll while they arrive (10,000 tools from 100 connectors took 90 s to federate before).
        seen: dict[ConnectorId, tuple[int, Any]] | None = None
        while True:
            try:
                generations = await self._pins.generations()
            except (SQLAlchemyError, HubError):
                logger.exception("could not read the review decisions")
            else:
                if seen is not None:
                    moved = {c for c in generations.keys() | seen.keys() if generations.get(c) != seen.get(c)}
                    if moved:
                        await self.reapply(moved)
                seen = generations
            await anyio.sleep(every_seconds)

    async def _apply(self, connectors: Sequence[ConnectorId]) -> None:
        if not connectors:
            return
        self._due.update(dict.fromkeys(connectors))
        async with self._lock:
            if not any(connector_id in self._due for connector_id in connectors):
                return  # the batch before this one applied them, with their latest listings
            batch = [connector_id for connector_id in self._due if connector_id in self._listings]
            self._due.clear()
            try:
                await self._apply_batch(batch)
            except BaseException:
                # Cancelled (or failed) halfway: the next caller applies what this batch did not finish.
                self._due = dict.fromkeys(batch) | self._due
                raise
            self.applied += len(batch)
            self.batches += 1
            self._applied_event.set()
            self._applied_event = anyio.Event()

    async def _apply_batch(self, batch: Sequence[ConnectorId]) -> None:
        listed = {connector_id: self._listings[connector_id] for connector_id in batch}
        allowed = (
            {connector_id: entry.listing for connector_id, entry in listed.items()}
            if self._pins is None
            else await self._allowed(listed)
        )
        # One synchronous pass: the catalog's listeners hear of the whole batch before any client is told.
        unsaved: list[ConnectorId] = []
        for connector_id, listing in allowed.items():
            changes = self._catalog.replace_connector(connector_id, listing, listed[connector_id].digest)
            tools_changed = any(change.kind is CatalogKind.TOOL and not change.is_empty for change in changes)
            if tools_changed or not listed[connector_id].persisted:
                unsaved.append(connector_id)
            for change in changes:
                if not change.is_empty:
                    logger.info(
                        "catalog changed",
                        connector=connector_id,
                        kind=change.kind,
                        added=len(change.added),
                        changed=len(change.changed),
                        removed=len(change.removed),
                    )
        records = {
            connector_id: [
                ToolRecord(
                    public_name=tool.public_name,
                    downstream_name=tool.downstream_name,
                    definition=dict(tool.definition),
                    sha256=tool.sha256,
                )
                for tool in self._catalog.tools.of_connector(connector_id)
            ]
            # A decision re-applied to a listing already recorded, changing none of its tools, has nothing to
            # write (and a listing's sightings are dated by the listing, not by re-applications).
            for connector_id in unsaved
        }
        for connector_id in await self._persist(records):
            listed[connector_id].persisted = True

    async def _persist(self, records: Mapping[ConnectorId, list[ToolRecord]]) -> list[ConnectorId]:
        """Store the connectors' tools; the connectors whose rows now match."""
        now = self._clock()
        try:
            await self._store.sync_catalogs(records, now)
        except (SQLAlchemyError, HubError):
            # One connector's failure (a public name another connector's row still holds) must not cost the
            # others their rows: each on its own.
            stored: list[ConnectorId] = []
            for connector_id, tools in records.items():
                try:
                    await self._store.sync_catalog(connector_id, tools, now)
                except (SQLAlchemyError, HubError):
                    logger.exception("could not persist the catalog", connector=connector_id)
                else:
                    stored.append(connector_id)
            return stored
        return list(records)

    async def _allowed(self, listed: Mapping[ConnectorId, _Listed]) -> dict[ConnectorId, ConnectorListing]:
        """The part of each listing the pins allow; records what is new about the rest."""
        if self._pins is None:  # pragma: no cover - checked by the caller
            return {connector_id: entry.listing for connector_id, entry in listed.items()}
        try:
            decided = await self._pins.decisions(list(listed))
        except (SQLAlchemyError, HubError):
            logger.exception(
                "could not read the pins: the connectors' previous catalog keeps serving", connectors=list(listed)
            )
            return {connector_id: self._current(connector_id, entry) for connector_id, entry in listed.items()}
        sightings: dict[ConnectorId, list[Sighting]] = {}
        kept: dict[ConnectorId, dict[CatalogKind, list[Mapping[str, Any]]]] = {}
        for connector_id, entry in listed.items():
            seen = sightings[connector_id] = []
            offered = kept[connector_id] = {}
            for kind in PINNED_KINDS:
                offered[kind] = []
                for definition in entry.listing.of(kind):
                    verdict = self._verdict(connector_id, kind, definition, entry.digest, decided[connector_id])
                    if verdict is None:
                        continue
                    sighting, serve = verdict
                    if sighting is not None:
                        seen.append(sighting)
                    if serve:
                        offered[kind].append(definition)
        if any(sightings.values()):
            try:
                changed = await self._pins.observe_many(
                    {connector_id: seen for connector_id, seen in sightings.items() if seen}, self._clock()
                )
            except (SQLAlchemyError, HubError):
                logger.exception("could not record the pins: nothing new is offered", connectors=list(listed))
                changed = []
                for connector_id, seen in sightings.items():
                    accepted = {(s.kind, s.name, s.sha256) for s in seen if s.status is PinStatus.APPROVED}
                    digest = listed[connector_id].digest
                    for kind, offered in kept[connector_id].items():
                        offered[:] = [
                            d for d in offered if (kind, str(d.get(key_field(kind))), digest(d)) not in accepted
                        ]
            await self._record(changed)
        return {
            connector_id: replace(
                entry.listing,
                tools=tuple(kept[connector_id][CatalogKind.TOOL]),
                prompts=tuple(kept[connector_id][CatalogKind.PROMPT]),
                resource_templates=tuple(kept[connector_id][CatalogKind.RESOURCE_TEMPLATE]),
            )
            for connector_id, entry in listed.items()
        }

    def _verdict(
        self,
        connector_id: ConnectorId,
        kind: CatalogKind,
        definition: Mapping[str, Any],
        digest: Callable[[Mapping[str, Any]], str],
        decided: Decisions,
    ) -> tuple[Sighting | None, bool] | None:
        """(what to record, whether to offer it) for one listed definition; None for one without a usable key."""
        name = definition.get(key_field(kind))
        if not isinstance(name, str) or not name:
            return None
        sha = digest(definition)
        public = public_key(kind, connector_id, name)
        status = decided.get((kind, name, sha))
        lock = self._policy.lock
        locked = lock is not None and lock.digest(kind, public) == sha

        def sighting(
            status: PinStatus, by: str | None = None, flags: tuple[str, ...] = (), reason: str | None = None
        ) -> Sighting:
            return Sighting(kind, name, public, sha, dict(definition), flags, status, by, reason)

        if status is PinStatus.APPROVED:
            return None, lock is None or locked
        if status in (PinStatus.REJECTED, PinStatus.REFUSED):
            return None, False
        inspection = inspect(definition, key_field(kind), self._policy.limits)
        if inspection.refusal is not None:
            return sighting(PinStatus.REFUSED, "hub", inspection.flags, inspection.refusal), False
        if locked:
            return sighting(PinStatus.APPROVED, "lock", inspection.flags), True
        if lock is None and connector_id in self._policy.auto and not inspection.flags:
            return sighting(PinStatus.APPROVED, "auto"), True
        return sighting(PinStatus.PENDING, flags=inspection.flags), False

    def _current(self, connector_id: ConnectorId, listed: _Listed) -> ConnectorListing:
        """The listing cut to the pinned definitions the catalog serves now (the pins could not be read)."""
        listing = listed.listing
        kept: dict[CatalogKind, tuple[Mapping[str, Any], ...]] = {}
        for kind in PINNED_KINDS:
            section = self._catalog.section(kind)
            kept[kind] = tuple(
                definition
                for definition in listing.of(kind)
                if (entry := section.by_downstream_name(connector_id, str(definition.get(key_field(kind))))) is not None
                and entry.sha256 == listed.digest(definition)
            )
        return replace(
            listing,
            tools=kept[CatalogKind.TOOL],
            prompts=kept[CatalogKind.PROMPT],
            resource_templates=kept[CatalogKind.RESOURCE_TEMPLATE],
        )

    async def _record(self, changed: list[PinRecord]) -> None:
        accepted: dict[tuple[ConnectorId, str | None], int] = {}
        for record in changed:
            outcome = _AUDITED.get(record.status)
            if outcome is None:
                continue
            if record.status is PinStatus.APPROVED and not record.flags:
                # One line per connector for what its trust or the lock accepted unflagged (the audit has each):
                # a first start of auto connectors would otherwise log a warning per definition, 10,000 of them.
                key = (record.connector_id, record.decided_by)
                accepted[key] = accepted.get(key, 0) + 1
            else:
                logger.warning(
                    "definition " + ("waits for review" if record.status is PinStatus.PENDING else str(record.status)),
                    connector=record.connector_id,
                    kind=record.kind,
                    name=record.public_name,
                    sha256=record.sha256,
                    flags=list(record.flags),
                )
            if self._audit is not None:
                await self._audit(
                    audit_decision(record, outcome, f"hub:{record.decided_by or 'review'}", self._clock())
                )
        for (connector_id, by), count in accepted.items():
            logger.warning("definitions approved", connector=connector_id, by=by, count=count)

    async def connector_removed(self, connector_id: ConnectorId) -> None:
        """The pool's `on_removed`: the connector's entries leave the catalog (clients are told), and its tools'
        rows are marked removed. Its last listing is forgotten: no later batch or re-application brings it back."""
        async with self._lock:
            self._listings.pop(connector_id, None)
            self._due.pop(connector_id, None)
            await self._forget(connector_id)

    async def _forget(self, connector_id: ConnectorId) -> None:
        changes = self._catalog.remove_connector(connector_id)
        kinds = [change.kind for change in changes if not change.is_empty]
        logger.info("connector removed from the catalog", connector=connector_id, kinds=kinds)
        try:
            await self._store.sync_catalog(connector_id, [], self._clock())
        except (SQLAlchemyError, HubError):
            logger.exception("could not persist the catalog", connector=connector_id)
