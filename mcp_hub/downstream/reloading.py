"""Live connectors: the running hub follows `connectors/` without a restart (issue 11 §5).

Three triggers, one reload: a cheap poll of the directory (`[hub] connectors_poll_seconds`: names, modification
times, sizes and inodes of `*.toml`, no new dependency; 0 turns it off), `SIGHUP` to the serving process, and
`mcp-hub connectors reload`, which writes a token into `connectors/.reload-request` (looked at every
`REQUEST_POLL_SECONDS` even with the directory poll off). The request carries exactly the authority of whoever may
edit connector files, and nothing listens on the network for it; the command waits for the hub to report its token
as answered in `/healthz`.

A reload reads every file on its own with the start-up checks (`scan_connectors`). A bad file is reported (logged,
and in `/healthz` under `connector_files`) and changes nothing: the connector it names keeps its previous definition,
or stays absent if it never had a good one. Everything else goes to `DownstreamPool.apply`.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import structlog

from mcp_hub.config.connectors import (
    ConnectorFiles,
    ConnectorSpec,
    directory_signature,
    read_reload_request,
    scan_connectors,
)
from mcp_hub.domain import ConnectorId
from mcp_hub.downstream.pool import DownstreamPool, PoolChanges
from mcp_hub.errors import ConfigError

logger = structlog.get_logger(__name__)

REQUEST_POLL_SECONDS = 0.5
"""How often the reload request is looked at, even when the directory itself is not watched (`poll_seconds` 0)."""


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """The outcome of the last reload, as `/healthz` shows it under `connector_files`."""

    at: datetime
    trigger: str
    changes: PoolChanges
    errors: dict[str, str] = field(default_factory=dict[str, str])
    """Per bad file (its name), why it was not applied."""
    request: str | None = None
    """The latest `mcp-hub connectors reload` token this reload (or an earlier one) has answered."""

    def as_json(self) -> dict[str, Any]:
        return {
            "last_reload": self.at.isoformat(),
            "trigger": self.trigger,
            "added": self.changes.added,
            "changed": self.changes.changed,
            "removed": self.changes.removed,
            "errors": self.errors,
            "request": self.request,
        }


def _merged(files: ConnectorFiles, serving: list[ConnectorSpec]) -> list[ConnectorSpec]:
    """What to serve: every good file, and for each bad one the definition being served now (if any)."""
    wanted: dict[ConnectorId, ConnectorSpec] = dict(files.specs)
    bad_ids = {ConnectorId(Path(name).stem) for name in files.errors}
    for spec in serving:
        if spec.id in bad_ids and spec.id not in wanted:
            wanted[spec.id] = spec
    return [wanted[connector_id] for connector_id in sorted(wanted)]


class ConnectorWatcher:
    """Applies the connectors directory to the running pool when it changes, on SIGHUP, or on request."""

    def __init__(self, directory: Path, pool: DownstreamPool, *, poll_seconds: float) -> None:
        self._directory = directory
        self._pool = pool
        self._poll_seconds = poll_seconds
        self._reloading = anyio.Lock()
        self._signature = directory_signature(directory)
        self._request: str | None = read_reload_request(directory)
        self.last = ReloadReport(at=datetime.now(UTC), trigger="start", changes=PoolChanges([], [], []))
        self.reloads = 0
        self._reloaded = anyio.Event()

    async def reload(self, trigger: str) -> ReloadReport:
        """Read the directory and apply it; a bad file keeps its connector's previous definition."""
        async with self._reloading:
            self._signature = directory_signature(self._directory)
            request = read_reload_request(self._directory)
            if request is not None and request != self._request:
                trigger = "mcp-hub connectors reload"
            self._request = request
            try:
                files = await anyio.to_thread.run_sync(scan_connectors, self._directory)
            except ConfigError as exc:
                logger.error("connectors not reloaded", trigger=trigger, error=str(exc))  # noqa: TRY400 - no traceback: the message says it all
                files = ConnectorFiles(
                    specs={spec.id: spec for spec in self._pool.specs}, errors={self._directory.name: str(exc)}
                )
            for name, error in sorted(files.errors.items()):
                logger.error("connector file not applied: the old definition keeps serving", file=name, error=error)
            changes = await self._pool.apply(_merged(files, self._pool.specs))
            self.last = ReloadReport(
                at=datetime.now(UTC), trigger=trigger, changes=changes, errors=files.errors, request=request
            )
            logger.info(
                "connectors reloaded",
                trigger=trigger,
                added=changes.added,
                changed=changes.changed,
                removed=changes.removed,
                bad_files=sorted(files.errors),
            )
            self.reloads += 1
            reloaded, self._reloaded = self._reloaded, anyio.Event()
            reloaded.set()
            return self.last

    async def wait_reloads(self, count: int) -> None:
        """Return once `count` reloads have happened since the start (for tests and callers that must know)."""
        while self.reloads < count:
            await self._reloaded.wait()

    async def _poll(self) -> None:
        """Every tick, look at the reload request; every `poll_seconds` (unless 0), at the whole directory. Both are
        a bounded number of `stat` calls on a local directory, done in the loop: a worker thread per tick would cost
        more than the calls themselves (the reload itself reads the files in a thread)."""
        tick = min(self._poll_seconds, REQUEST_POLL_SECONDS) if self._poll_seconds > 0 else REQUEST_POLL_SECONDS
        files_due = anyio.current_time() + self._poll_seconds
        while True:
            await anyio.sleep(tick)
            if self._poll_seconds > 0 and anyio.current_time() >= files_due:
                files_due = anyio.current_time() + self._poll_seconds
                signature = directory_signature(self._directory)
                if signature != self._signature:
                    await self.reload("files")
                    continue
            request = read_reload_request(self._directory)
            if request is not None and request != self._request:
                await self.reload("mcp-hub connectors reload")

    async def _on_sighup(self) -> None:
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                await self.reload("SIGHUP")

    @asynccontextmanager
    async def running(self, *, sighup: bool = False) -> AsyncGenerator[ConnectorWatcher]:
        """Poll the reload request, and the directory unless `poll_seconds` is 0; with `sighup` (`mcp-hub serve`,
        whose loop runs in the main thread), reload on SIGHUP."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._poll, name="connectors:poll")
            if sighup:
                tasks.start_soon(self._on_sighup, name="connectors:sighup")
            try:
                yield self
            finally:
                tasks.cancel_scope.cancel()
