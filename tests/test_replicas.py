"""Several hub replicas behind HAProxy, sharing PostgreSQL and Redis (issue 12 §4, "How it is proven").

Three `mcp-hub serve` processes (ids `hub-1..3`, auth on) share one fresh PostgreSQL database and one Redis (limits,
call cache and the replicas' bus, `mcp_hub.fanout`); Debian's HAProxy runs `deploy/haproxy.cfg` in front of them
(round robin, `/readyz` checks); every replica connects to one real Streamable HTTP downstream
(`tests/fixtures/replica_server.py`) that records when calls arrive. The processes start once for the module.
Each response names its replica (`Mcp-Hub-Replica`, sent because the ids are named on purpose).

Without PostgreSQL, Redis or haproxy the module is skipped, except under CI (`CI` set), where it fails. Threats:
T19 (an approved call runs at most once: a crashed replica's execution is failed, never re-run; a starting replica
leaves a live one's alone), T09/T10 (a revoked grant is refused by every replica within the decision-cache bound).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import httpx2
import pytest
from anyio.abc import Process
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ToolsListChanged

from mcp_hub.config.settings import REPLICA_ID_ENV, load_settings
from mcp_hub.domain import Role
from mcp_hub.runtime import admin_tools
from tests.conftest import connector_toml, modern_call, stop_process, write_config
from tests.db.conftest import fresh_postgres_database
from tests.test_cli import hub_env, mcp_hub
from tests.test_http_downstream import free_port
from tests.test_limits import REDIS_URL, require_redis
from tests.test_stdio_front_door import MCP_HUB
from tests.web.browser import sign_in

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parent.parent
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
DOWNSTREAM = Path(__file__).resolve().parent / "fixtures" / "replica_server.py"
REPLICA_HEADER = "mcp-hub-replica"
PASSWORD = "a long enough password 123"
DECISION_CACHE_SECONDS = 5.0
LEASE_SECONDS = 3.0
RELEASE_BOUND_SECONDS = 0.050
"""Issue 12 §3/§4: an approval decided on one replica releases a call held on another within 50 ms."""


def require_haproxy() -> str:
    found = shutil.which("haproxy") or next(
        (path for path in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(path).exists()), None
    )
    if found is None:
        reason = "haproxy is missing: apt-get install -y haproxy"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the multi-replica test")
        pytest.skip(reason)
    return found


@dataclass
class Replica:
    name: str
    port: int
    process: Process
    log: BinaryIO

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/mcp"


@dataclass
class Cluster:
    config: Path
    directory: Path
    lb_port: int
    downstream_port: int
    replicas: dict[str, Replica] = field(default_factory=dict[str, Replica])

    @property
    def lb_base_url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    @property
    def lb_url(self) -> str:
        return f"{self.lb_base_url}/mcp"

    async def start_replica(self, name: str) -> Replica:
        port = free_port()
        log = (self.directory / f"{name}.log").open("ab")
        process = await anyio.open_process(
            [str(MCP_HUB), "serve", "--config", str(self.config), "--port", str(port)],
            stdout=log,
            stderr=log,
            env={**hub_env(), REPLICA_ID_ENV: name},
        )
        replica = Replica(name=name, port=port, process=process, log=log)
        self.replicas[name] = replica
        with anyio.fail_after(40):
            await wait_ready(replica)
        return replica

    async def stop_replica(self, name: str, *, kill: bool = False) -> None:
        replica = self.replicas.pop(name)
        process = replica.process
        if process.returncode is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        with anyio.move_on_after(15):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()
        replica.log.close()

    async def token(self, agent: str) -> str:
        async with admin_tools(load_settings(self.config)) as tools:
            minted = await tools.auth.admin.mint_token(agent)
        token: str = minted["access_token"]
        return token

    async def release(self, key: str) -> None:
        """End the wait of the downstream's `stamp` call recorded under `key`."""
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.post(f"http://127.0.0.1:{self.downstream_port}/release/{key}")
        response.raise_for_status()

    async def stamps(self) -> dict[str, float]:
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.get(f"http://127.0.0.1:{self.downstream_port}/stamps")
        stamps: dict[str, float] = response.json()
        return stamps


async def wait_ready(replica: Replica) -> None:
    async with httpx2.AsyncClient(timeout=5) as http:
        while True:
            if replica.process.returncode is not None:
                raise AssertionError(f"replica {replica.name} exited with {replica.process.returncode}")
            try:
                if (await http.get(f"{replica.base_url}/readyz")).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await anyio.sleep(0.1)


async def wait_until_served_by(lb_base_url: str, names: set[str]) -> None:
    """Until HAProxy's health checks have put every one of `names` in rotation."""
    seen: set[str] = set()
    async with httpx2.AsyncClient(timeout=5) as http:
        while not names <= seen:
            try:
                seen.add((await http.get(f"{lb_base_url}/readyz")).headers.get(REPLICA_HEADER, ""))
            except httpx2.TransportError:
                await anyio.sleep(0.1)


def replica_config(cluster_dir: Path, database_url: str, lb_port: int, downstream_port: int) -> Path:
    prefix = f"test:replicas:{uuid.uuid4().hex}:"
    return write_config(
        cluster_dir,
        {
            "gate": connector_toml(
                id="gate",
                transport="http",
                url=f"http://127.0.0.1:{downstream_port}/mcp",
                protocol="auto",
                call_timeout_seconds=40,
            )
        },
        extra=(
            "[hub]\n"
            f'public_base_url = "http://127.0.0.1:{lb_port}"\n'
            f"replica_lease_seconds = {LEASE_SECONDS}\n"
            "[auth]\n"
            f"decision_cache_seconds = {DECISION_CACHE_SECONDS}\n"
            "[limits]\n"
            f'redis_url = "{REDIS_URL}"\n'
            f'redis_key_prefix = "{prefix}"\n'
            "per_agent = { rate = 1000.0, burst = 1000 }\n"
            "per_agent_connector = { rate = 1000.0, burst = 1000 }\n"
            "per_agent_tool = { rate = 1000.0, burst = 1000 }\n"
            "[approvals]\n"
            "hold_seconds = 40\n"
            "[[approvals.rules]]\n"
            'name = "stamp"\n'
            'tools = ["gate__stamp"]\n'
            'approvers = ["role:approver"]\n'
        ),
        auth=True,
        database_url=database_url,
    )


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[Cluster]:
    haproxy = require_haproxy()
    await require_redis()
    async with AsyncExitStack() as stack:
        database_url = await stack.enter_async_context(fresh_postgres_database())
        directory = tmp_path_factory.mktemp("replicas")
        downstream_port, lb_port = free_port(), free_port()
        downstream = await anyio.open_process([sys.executable, str(DOWNSTREAM), str(downstream_port)])
        stack.push_async_callback(stop_process, downstream, 10)
        config = replica_config(directory, database_url, lb_port, downstream_port)
        migrated = await mcp_hub(config, "migrate")
        assert migrated.returncode == 0, migrated.stderr.decode()
        async with admin_tools(load_settings(config)) as tools:
            await tools.auth.admin.create_agent("spread-bot", ["tool:gate__*"])
            await tools.auth.admin.create_agent("revoked-bot", ["tool:gate__*"])
            await tools.auth.admin.create_user("alice", Role.APPROVER, PASSWORD)
        cluster = Cluster(config=config, directory=directory, lb_port=lb_port, downstream_port=downstream_port)

        async def stop_every_replica() -> None:
            for name in list(cluster.replicas):
                await cluster.stop_replica(name)

        stack.push_async_callback(stop_every_replica)
        async with anyio.create_task_group() as starting:
            for name in ("hub-1", "hub-2", "hub-3"):
                starting.start_soon(cluster.start_replica, name)
        balancer = await anyio.open_process(
            [haproxy, "-db", "-f", str(HAPROXY_CONFIG)],
            env={
                **os.environ,
                "MCP_HUB_LB_BIND": f"127.0.0.1:{lb_port}",
                **{f"MCP_HUB_REPLICA_{n}": f"127.0.0.1:{cluster.replicas[f'hub-{n}'].port}" for n in (1, 2, 3)},
            },
        )
        stack.push_async_callback(stop_process, balancer, 10)
        with anyio.fail_after(20):
            await wait_until_served_by(cluster.lb_base_url, {"hub-1", "hub-2", "hub-3"})
        yield cluster


async def call(url: str, token: str, name: str, arguments: dict[str, Any]) -> httpx2.Response:
    """One 2026-07-28 `tools/call` as a bare HTTP request (to a replica, or to the balancer)."""
    return await modern_call(url, name, arguments, token=token)


def result_text(response: httpx2.Response) -> str:
    """The text of a tools/call answer (JSON, or the last SSE `data:` line)."""
    raw = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        raw = [line for line in raw.splitlines() if line.startswith("data:")][-1].removeprefix("data:")
    message = json.loads(raw)
    content = message["result"]["content"]
    return str(content[0]["text"])


@asynccontextmanager
async def approver(base_url: str) -> AsyncGenerator[tuple[httpx2.AsyncClient, str]]:
    """Alice's web session on one replica, and the CSRF token its API hands out."""
    async with httpx2.AsyncClient(base_url=base_url, timeout=20) as client:
        signed_in = await sign_in(client, base_url, "alice", PASSWORD, "/approvals")
        assert signed_in.status_code == 303, signed_in.text
        listing = await client.get("/api/approvals")
        assert listing.status_code == 200, listing.text
        yield client, listing.headers["x-csrf-token"]


async def pending_action(client: httpx2.AsyncClient, key: str) -> str:
    """The id of the pending action holding the call with argument `key` (it appears once the call is held)."""
    with anyio.fail_after(20):
        while True:
            actions = (await client.get("/api/approvals")).json()["actions"]
            for action in actions:
                detail = (await client.get(f"/api/approvals/{action['id']}")).json()
                if detail.get("arguments", {}).get("key") == key:
                    return str(action["id"])
            await anyio.sleep(0.05)


async def approve(client: httpx2.AsyncClient, csrf: str, action_id: str) -> None:
    decided = await client.post(
        f"/api/approvals/{action_id}/decision", json={"decision": "approve"}, headers={"X-CSRF-Token": csrf}
    )
    assert decided.status_code == 200, decided.text


async def wait_for_stamps(cluster: Cluster, *keys: str) -> dict[str, float]:
    with anyio.fail_after(20):
        while not set(keys) <= set(stamps := await cluster.stamps()):  # noqa: ASYNC110 - another process's state
            await anyio.sleep(0.05)
    return stamps


async def test_a_modern_client_is_served_by_every_replica_listen_streams_included(cluster: Cluster) -> None:
    """Issue 12 §4: a 2026-07-28 client is served by any replica for every request, subscriptions included (no
    affinity): one SDK client through the balancer sees all three, for calls and for listen streams."""
    served: list[tuple[str, str]] = []

    async def record(response: httpx2.Response) -> None:
        method = json.loads(response.request.content or b"{}").get("method", "")
        served.append((method, response.headers.get(REPLICA_HEADER, "")))

    token = await cluster.token("spread-bot")
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30, event_hooks={"response": [record]}
    )
    async with http, Client(streamable_http_client(cluster.lb_url, http_client=http), mode="2026-07-28") as client:
        for n in range(6):
            answer = await client.call_tool("gate__echo", {"text": f"spread {n}"})
            assert not answer.is_error
        for _ in range(6):
            async with client.listen(tools_list_changed=True):
                pass

    calls = {replica for method, replica in served if method == "tools/call"}
    listens = {replica for method, replica in served if method == "subscriptions/listen"}
    assert calls == {"hub-1", "hub-2", "hub-3"}, served
    assert listens == {"hub-1", "hub-2", "hub-3"}, served


async def test_a_grant_revoked_through_one_process_is_refused_by_every_replica_at_once(cluster: Cluster) -> None:
    """Issue 12 §4: a grant revoked through one process (here the admin composition the `mcp-hub grants` command
    uses, which tells the replicas over the bus) is refused by every replica within the decision-cache bound (5 s
    here), and in fact at once: each replica cached the grant a moment before, so without the bus each would keep
    allowing it for seconds."""
    token = await cluster.token("revoked-bot")
    replicas = [cluster.replicas[name] for name in ("hub-1", "hub-2", "hub-3")]

    async def allowed(replica: Replica) -> None:  # every replica decides (and caches) the grant
        answer = await call(replica.url, token, "gate__echo", {"text": "before"})
        assert answer.status_code == 200, answer.text

    warmed_from = time.monotonic()  # no replica cached the grant before this, so none expires it before +5 s
    async with anyio.create_task_group() as warming:
        for replica in replicas:
            warming.start_soon(allowed, replica)
    async with admin_tools(load_settings(cluster.config)) as tools:
        assert await tools.auth.admin.remove_grant("revoked-bot", "tool:gate__*")
    revoked_at = time.monotonic()
    delays: dict[str, float] = {}

    async def refused(replica: Replica) -> None:
        with anyio.fail_after(DECISION_CACHE_SECONDS + 5):
            while (await call(replica.url, token, "gate__echo", {"text": "after"})).status_code != 403:  # noqa: ASYNC110 - another process's cache
                await anyio.sleep(0.02)
        delays[replica.name] = time.monotonic() - revoked_at

    async with anyio.create_task_group() as checking:
        for replica in replicas:
            checking.start_soon(refused, replica)
    print(f"a revoked grant was refused after {', '.join(f'{k} {v * 1000:.0f} ms' for k, v in sorted(delays.items()))}")
    assert max(delays.values()) < DECISION_CACHE_SECONDS
    # The bus, not the cache's expiry: every refusal came before any replica's cached grant could have expired.
    assert revoked_at + max(delays.values()) - warmed_from < DECISION_CACHE_SECONDS, delays


async def test_an_approval_decided_on_one_replica_releases_a_call_held_on_another_within_50_ms(
    cluster: Cluster,
) -> None:
    """Issue 12 §3/§4: a call held on hub-2 reaches the downstream within 50 ms of the decision's response on
    hub-1 (Redis pub/sub wakes it; the held call's own re-check is seconds away). The median of three rounds, as
    the issue's latency targets are measured: one round on a loaded 2-core machine is at the scheduler's mercy."""
    token = await cluster.token("spread-bot")
    latencies: list[float] = []
    since_asked: list[float] = []
    async with approver(cluster.replicas["hub-1"].base_url) as (alice, csrf):
        for _ in range(3):
            key = f"release-{uuid.uuid4().hex[:8]}"
            answers: list[httpx2.Response] = []
            asked_at = decided_at = float("nan")
            async with anyio.create_task_group() as tasks:

                async def held(key: str = key, answers: list[httpx2.Response] = answers) -> None:
                    answers.append(await call(cluster.replicas["hub-2"].url, token, "gate__stamp", {"key": key}))

                tasks.start_soon(held)
                action_id = await pending_action(alice, key)
                asked_at = time.monotonic()
                await approve(alice, csrf, action_id)
                decided_at = time.monotonic()
            arrived_at = (await cluster.stamps())[key]
            latencies.append(arrived_at - decided_at)
            since_asked.append(arrived_at - asked_at)
            assert answers[0].headers.get(REPLICA_HEADER) == "hub-2"
            assert result_text(answers[0]) == f"stamped {key}"

    shown = ", ".join(f"{latency * 1000:.1f}" for latency in latencies)
    asked = ", ".join(f"{latency * 1000:.1f}" for latency in since_asked)
    print(f"decision on hub-1 → call on hub-2 at the downstream: {shown} ms after the decision's response")
    print(f"(negative: before the response arrived), {asked} ms after the decision was asked for")
    assert statistics.median(latencies) < RELEASE_BOUND_SECONDS


async def test_a_list_change_reaches_a_client_listening_on_another_replica(cluster: Cluster) -> None:
    """Issue 12 §4: a connector's tools change (announced by the downstream, made through hub-1); a 2026-07-28
    client listening on hub-3 hears it and lists the new tool there."""
    token = await cluster.token("spread-bot")
    name = f"added_{uuid.uuid4().hex[:8]}"
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(cluster.replicas["hub-3"].url, http_client=http), mode="2026-07-28") as client,
        client.listen(tools_list_changed=True) as subscription,
    ):
        added = await call(cluster.replicas["hub-1"].url, token, "gate__add_tool", {"name": name})
        assert added.status_code == 200, added.text
        with anyio.fail_after(10):
            event = await subscription.__anext__()
        assert isinstance(event, ToolsListChanged)
        with anyio.fail_after(10):
            while f"gate__{name}" not in [tool.name for tool in (await client.list_tools()).tools]:  # noqa: ASYNC110
                await anyio.sleep(0.05)


async def test_a_replica_starting_does_not_fail_another_replicas_approved_call_in_flight(cluster: Cluster) -> None:
    """Issue 12 §4, T19: an approved call runs on hub-1 while a new replica starts (its start-up recovery runs);
    the call completes with its result instead of being failed as interrupted."""
    token = await cluster.token("spread-bot")
    key = f"long-{uuid.uuid4().hex[:8]}"
    answers: list[httpx2.Response] = []
    async with anyio.create_task_group() as tasks, approver(cluster.replicas["hub-2"].base_url) as (alice, csrf):

        async def held() -> None:
            # In flight until released below (at most 35 s, within the connector's 40 s call timeout).
            answers.append(await call(cluster.replicas["hub-1"].url, token, "gate__stamp", {"key": key, "seconds": 35}))

        tasks.start_soon(held)
        await approve(alice, csrf, await pending_action(alice, key))
        await wait_for_stamps(cluster, key)  # executing on hub-1 now
        await cluster.start_replica("hub-4")
        assert not answers, "the approved call ended before the new replica had started"
        await cluster.release(key)
    await cluster.stop_replica("hub-4")

    assert answers[0].headers.get(REPLICA_HEADER) == "hub-1"
    assert result_text(answers[0]) == f"stamped {key}"


async def test_a_killed_replica_loses_only_its_own_calls_and_its_approved_call_is_failed_not_rerun(
    cluster: Cluster,
) -> None:
    """Issue 12 §4: hub-3 is killed (SIGKILL) mid-call. Its own in-flight calls fail; those on hub-1 and hub-2
    complete; the balancer keeps serving on the others; the approved call hub-3 was running is failed (never run
    again, T19) by another replica once hub-3's lease has expired. Runs last: hub-3 stays dead."""
    token = await cluster.token("spread-bot")
    run = uuid.uuid4().hex[:8]
    approved_key = f"orphan-{run}"
    outcomes: dict[str, str] = {}
    keys = {f"{replica}-{n}-{run}": replica for replica in ("hub-1", "hub-2", "hub-3") for n in (1, 2)}
    approved_id = ""

    async with anyio.create_task_group() as tasks, approver(cluster.replicas["hub-1"].base_url) as (alice, csrf):

        async def slow(replica: str, key: str) -> None:
            try:
                answer = await call(cluster.replicas[replica].url, token, "gate__slow", {"seconds": 3, "key": key})
                outcomes[key] = result_text(answer)
            except httpx2.TransportError as exc:
                outcomes[key] = f"lost: {type(exc).__name__}"

        async def orphaned() -> None:
            with pytest.raises(httpx2.TransportError):
                await call(cluster.replicas["hub-3"].url, token, "gate__stamp", {"key": approved_key, "seconds": 30})

        tasks.start_soon(orphaned)
        approved_id = await pending_action(alice, approved_key)
        await approve(alice, csrf, approved_id)
        for key, replica in keys.items():
            tasks.start_soon(slow, replica, key)
        await wait_for_stamps(cluster, approved_key, *keys)  # every call is in flight downstream
        cluster.replicas["hub-3"].process.send_signal(signal.SIGKILL)
        await cluster.stop_replica("hub-3", kill=True)

        for n in range(4):  # meanwhile the balancer serves on the others
            answer = await call(cluster.lb_url, token, "gate__echo", {"text": f"after the crash {n}"})
            assert answer.status_code == 200, answer.text
            assert answer.headers.get(REPLICA_HEADER) in {"hub-1", "hub-2"}

    assert {key: outcome.startswith("lost") for key, outcome in outcomes.items()} == {
        key: replica == "hub-3" for key, replica in keys.items()
    }, outcomes
    assert {outcome for key, outcome in outcomes.items() if keys[key] != "hub-3"} == {"done"}

    with anyio.fail_after(LEASE_SECONDS + 10):
        while (status := (await alice_status(cluster, approved_id))) == "executing":  # noqa: ASYNC110
            await anyio.sleep(0.2)
    assert status == "failed"


async def alice_status(cluster: Cluster, action_id: str) -> str:
    async with approver(cluster.replicas["hub-1"].base_url) as (alice, _):
        return str((await alice.get(f"/api/approvals/{action_id}")).json()["status"])
