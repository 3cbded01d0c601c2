"""The deployment files (issue 12 §5, docs/deployment.md): Dockerfile, deploy/compose.yaml, deploy/k8s/, and the
configuration they share, deploy/config.toml.

Fast checks read the files as their tools would (YAML, the hub's own settings and connector loaders, HAProxy's
and kustomize's checkers where installed) and hold them to each other: every file a service mounts exists, the
hub replicas never migrate concurrently, the probes ask the hub's real paths on its real port. The compose
topology is also run with plain processes (the image's entry point, PostgreSQL, Redis, HAProxy): one migration,
two replicas, a `tools/call` of the shipped time connector through the load balancer. The image itself is built
where a container builder and the base image are available, and skipped saying which is missing otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
import uuid
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
import pytest
import yaml
from anyio.abc import Process
from starlette.applications import Starlette

from mcp_hub.config.connectors import load_connectors
from mcp_hub.config.settings import DATABASE_URL_ENV, METRICS_TOKEN_ENV, HubSettings, load_settings
from mcp_hub.gateway.app import HEALTH_PATH, READY_PATH
from mcp_hub.runtime import server_config
from tests.conftest import REPO, modern_call_body, modern_call_headers, stop_process
from tests.db.conftest import fresh_postgres_database
from tests.test_limits import REDIS_URL, require_redis

pytestmark = pytest.mark.anyio

DEPLOY = REPO / "deploy"
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
ENTRYPOINT = DEPLOY / "docker-entrypoint.sh"
HAPROXY_CFG = DEPLOY / "haproxy.cfg"
K8S = DEPLOY / "k8s"
VENV_BIN = Path(sys.executable).parent
REFERENCE_SERVERS = ("mcp-server-time", "mcp-server-fetch", "mcp-server-git")
ENTRYPOINT_ENV = {"MCP_HUB_CONFIG", "MCP_HUB_MIGRATE_ON_START"}
"""What deploy/docker-entrypoint.sh reads, besides what the hub itself reads (`DATABASE_URL_ENV`)."""
FAKE_PASSWORD = "compose-password"
FAKE_METRICS_TOKEN = "compose-metrics-token"


# --- reading the files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    arguments: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, each with the name of its build stage."""
    joined = re.sub(r"\\\n", " ", text)
    instructions: list[Instruction] = []
    stage = ""
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage = arguments.split(" AS ")[-1].strip() if " AS " in arguments else arguments
        instructions.append(Instruction(stage, keyword, arguments.strip()))
    return instructions


def text_of(instructions: list[Instruction]) -> str:
    return "\n".join(f"{i.keyword} {i.arguments}" for i in instructions)


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    documents = [cast("dict[str, Any]", doc) for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert documents, f"{path} holds no YAML document"
    return documents


def compose() -> dict[str, Any]:
    (document,) = load_yaml_documents(COMPOSE)
    return document


def services() -> dict[str, dict[str, Any]]:
    return cast("dict[str, dict[str, Any]]", compose()["services"])


def hub_services() -> dict[str, dict[str, Any]]:
    """The services running the hub image's default command, `serve`: the replicas behind the load balancer."""
    return {
        name: service
        for name, service in services().items()
        if "build" in service and "command" not in service and "profiles" not in service
    }


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's `${NAME}` / `${NAME:?message}` interpolation, enough for this file."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in variables, f"compose needs ${{{name}}}: not given to the check"
        return variables[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::\?[^}]*)?\}", replace, value)


def settings_under(config: Path, environment: Mapping[str, str]) -> HubSettings:
    """`config` loaded by the hub's own loader, under `environment` as a container would see it."""
    read = (DATABASE_URL_ENV, METRICS_TOKEN_ENV)
    saved = {name: os.environ.pop(name) for name in read if name in os.environ}
    os.environ.update({name: environment[name] for name in read if name in environment})
    try:
        return load_settings(config)
    finally:
        for name in read:
            os.environ.pop(name, None)
        os.environ.update(saved)


def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    kustomization = load_yaml_documents(K8S / "kustomization.yaml")[0]
    for resource in cast("list[str]", kustomization["resources"]):
        for document in load_yaml_documents(K8S / resource):
            objects[(document["kind"], document["metadata"]["name"])] = document
    return objects


def pod_spec(k8s: dict[tuple[str, str], dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return cast("dict[str, Any]", k8s[(kind, name)]["spec"]["template"]["spec"])


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def haproxy_variables() -> set[str]:
    """The variables deploy/haproxy.cfg needs: those it reads, less those it reads only under `.if defined(...)`."""
    text = HAPROXY_CFG.read_text()
    optional = set(re.findall(r"^\.if defined\(([A-Za-z_][A-Za-z0-9_]*)\)", text, flags=re.M))
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)) - optional


# --- the Dockerfile ------------------------------------------------------------------------------------------


def test_the_image_is_multi_stage_slim_and_matches_requires_python() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    minimum = re.fullmatch(r">=(\d+\.\d+)", pyproject["project"]["requires-python"])
    assert minimum is not None
    base = next(i.arguments for i in instructions if i.keyword == "ARG" and i.arguments.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(rf"PYTHON_IMAGE=(docker\.io/library/)?python:{re.escape(minimum.group(1))}-slim(-\w+)?", base)
    stages = [i.arguments for i in instructions if i.keyword == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    # Compilers only in the builder; the runtime stage copies the finished virtual environment.
    runtime = [i for i in instructions if i.stage == "runtime"]
    assert any("build-essential" in i.arguments for i in instructions if i.stage == "builder")
    assert not any(re.search(r"build-essential|gcc|\bmake\b|-dev\b", i.arguments) for i in runtime)
    assert any(i.keyword == "COPY" and i.arguments.startswith("--from=builder /opt/mcp-hub") for i in runtime)


def test_the_image_holds_the_hub_with_its_extras_and_the_reference_servers_of_the_test_extra() -> None:
    text = DOCKERFILE.read_text()
    assert '".[postgres,fast]"' in text
    assert '"mcp-hub[postgres,fast]"' in text
    test_extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    for server in REFERENCE_SERVERS:
        (pinned,) = [requirement for requirement in test_extra if requirement.startswith(f"{server}>=")]
        assert f'"{pinned}"' in text, f"the image installs {server} at another minimum version than the tests"


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck_on_readyz() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    runtime = [i for i in instructions if i.stage == "runtime"]
    (user,) = [i.arguments for i in runtime if i.keyword == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    # USER comes before the entry point, so nothing the container runs is root.
    keywords = [i.keyword for i in runtime]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    (healthcheck,) = [i.arguments for i in runtime if i.keyword == "HEALTHCHECK"]
    assert "MCP_HUB_HEALTHCHECK_URL" in healthcheck
    settings = settings_under(DEPLOY / "config.toml", {METRICS_TOKEN_ENV: FAKE_METRICS_TOKEN})
    assert f"MCP_HUB_HEALTHCHECK_URL=http://127.0.0.1:{settings.hub.listen_port}{READY_PATH}" in text_of(runtime)
    (entrypoint,) = [i.arguments for i in runtime if i.keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["tini", "--", "docker-entrypoint"]


def test_everything_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    """A COPY of a file that .dockerignore leaves out fails only at build time: caught here instead."""
    kept = [
        line.removeprefix("!").rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for instruction in dockerfile_instructions(DOCKERFILE.read_text()):
        if instruction.keyword != "COPY" or instruction.arguments.startswith("--from="):
            continue
        *sources, _destination = instruction.arguments.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
            assert any(source.rstrip("/") == k or source.startswith(k + "/") for k in kept), (
                f"COPY {source}: left out of the build context by .dockerignore"
            )
    assert os.access(ENTRYPOINT, os.X_OK), "the entry point must be executable (the image copies its mode)"


# --- deploy/config.toml and the compose file ---------------------------------------------------------------


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    environment = cast("dict[str, str]", service.get("environment", {}))
    variables = {"POSTGRES_PASSWORD": FAKE_PASSWORD, METRICS_TOKEN_ENV: FAKE_METRICS_TOKEN}
    return {key: interpolate(str(value), variables) for key, value in environment.items()}


def test_the_compose_topology_is_two_replicas_a_load_balancer_postgres_and_redis() -> None:
    names = set(services())
    assert {"postgres", "redis", "migrate", "lb"} <= names
    assert len(hub_services()) >= 2
    lb = services()["lb"]
    assert lb["image"].startswith("haproxy:")
    assert services()["postgres"]["image"].startswith("postgres:")
    assert services()["redis"]["image"].startswith("redis:")
    for name, service in services().items():
        assert "image" in service or "build" in service, f"{name}: neither image nor build"
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]) == DOCKERFILE


def test_services_start_in_order_once_what_they_need_is_healthy() -> None:
    for name in ("postgres", "redis"):
        assert services()[name]["healthcheck"]["test"], f"{name} has no health check to wait on"
    assert services()["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name, service in hub_services().items():
        assert service["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }, name
    # The image's HEALTHCHECK (/readyz) is what the load balancer waits on.
    assert services()["lb"]["depends_on"] == {name: {"condition": "service_healthy"} for name in hub_services()}


def test_only_the_one_shot_service_migrates() -> None:
    """Concurrent `mcp-hub migrate` runs collide on PostgreSQL (two replicas creating the same tables): the
    replicas start with MCP_HUB_MIGRATE_ON_START=0 after the `migrate` service completed."""
    assert services()["migrate"]["command"] == ["migrate"]
    assert services()["migrate"]["restart"] == "no"
    for name, service in hub_services().items():
        assert compose_environment(service)["MCP_HUB_MIGRATE_ON_START"] == "0", name


def test_every_file_a_service_mounts_exists() -> None:
    for name, service in services().items():
        for volume in cast("list[str]", service.get("volumes", [])):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is not in the repository"


def mount_parts(volume: str) -> list[str]:
    return volume.split(":")


def test_the_replicas_share_one_configuration_that_the_hub_accepts() -> None:
    """deploy/config.toml, loaded by the hub's own loader with the environment compose gives a replica: PostgreSQL
    and Redis shared, auth on, the load balancer's URL as the public one; every environment variable compose
    passes is one the image or the hub reads."""
    for name, service in hub_services().items():
        environment = compose_environment(service)
        assert set(environment) <= {DATABASE_URL_ENV, METRICS_TOKEN_ENV, *ENTRYPOINT_ENV}, name
        mounted = {target: (DEPLOY / host).resolve() for host, target, *_ in map(mount_parts, service["volumes"])}
        config = mounted["/etc/mcp-hub/config.toml"]
        settings = settings_under(config, environment)
        # The configuration's relative connectors directory is the one mounted beside it in the container.
        assert settings.connectors_dir == mounted["/etc/mcp-hub/connectors"]
        assert settings.database.url.startswith("postgresql+asyncpg://mcp_hub:")
        assert FAKE_PASSWORD in settings.database.url
        assert FAKE_PASSWORD not in config.read_text()
        assert settings.limits.redis_url.startswith("redis://redis:")
        assert settings.auth.enabled
        assert settings.logging.format == "json"
        assert settings.metrics.enabled
        assert FAKE_METRICS_TOKEN not in config.read_text()
        assert not settings.tracing.enabled
        assert ipaddress.ip_address(settings.hub.listen_host).is_unspecified  # every interface of the container
        assert settings.hub.public_base_url is not None
        assert settings.hub.public_base_url.endswith(":" + services()["lb"]["ports"][0].split(":")[0])


def test_the_shipped_connectors_run_commands_the_image_installs() -> None:
    for spec in load_connectors(
        settings_under(DEPLOY / "config.toml", {METRICS_TOKEN_ENV: FAKE_METRICS_TOKEN}).connectors_dir
    ):
        assert spec.transport != "stdio" or spec.command in REFERENCE_SERVERS, spec.id


def test_the_load_balancer_gets_every_variable_its_configuration_reads() -> None:
    """deploy/haproxy.cfg takes its addresses from the environment: compose must pass each one, and name each
    replica's hub port; HAProxy itself accepts the file when it is installed."""
    lb_environment = compose_environment(services()["lb"])
    assert haproxy_variables() <= set(lb_environment), "compose does not pass every variable haproxy.cfg reads"
    port = settings_under(DEPLOY / "config.toml", {METRICS_TOKEN_ENV: FAKE_METRICS_TOKEN}).hub.listen_port
    backends = {value for value in lb_environment.values() if value.split(":")[0] in hub_services()}
    assert backends == {f"{name}:{port}" for name in hub_services()}
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed: the configuration was checked against compose only")
    # The service names resolve only inside compose's network: the check uses loopback at the same ports.
    local = {key: re.sub(r"^[a-z0-9-]+:", "127.0.0.1:", value) for key, value in lb_environment.items()}
    done = subprocess.run(
        [haproxy, "-c", "-f", str(HAPROXY_CFG)], env={**os.environ, **local}, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


# --- Kubernetes --------------------------------------------------------------------------------------------


def test_the_kubernetes_deployment_has_replicas_probes_and_a_locked_down_container() -> None:
    k8s = k8s_objects()
    deployment = k8s[("Deployment", "mcp-hub")]
    assert deployment["spec"]["replicas"] >= 2
    spec = pod_spec(k8s, "Deployment", "mcp-hub")
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    (port,) = container["ports"]
    config = k8s_config(k8s)
    assert port["containerPort"] == config.hub.listen_port
    assert container["readinessProbe"]["httpGet"] == {"path": READY_PATH, "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": HEALTH_PATH, "port": port["name"]}
    service = k8s[("Service", "mcp-hub")]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_kubernetes_migrates_in_one_job_and_the_replicas_never_do() -> None:
    k8s = k8s_objects()
    (hub,) = pod_spec(k8s, "Deployment", "mcp-hub")["containers"]
    (job,) = pod_spec(k8s, "Job", "mcp-hub-migrate")["containers"]
    assert job["args"] == ["migrate"]
    assert env_of(hub)["MCP_HUB_MIGRATE_ON_START"]["value"] == "0"
    for container in (hub, job):
        env = env_of(container)
        assert set(env) <= {DATABASE_URL_ENV, METRICS_TOKEN_ENV, *ENTRYPOINT_ENV}
        # The database URL (with its password) and the metrics token come from a Secret, never from the ConfigMap.
        assert env[DATABASE_URL_ENV]["valueFrom"]["secretKeyRef"] == {"name": "mcp-hub-secrets", "key": "database-url"}
        assert env[METRICS_TOKEN_ENV]["valueFrom"]["secretKeyRef"] == {
            "name": "mcp-hub-secrets",
            "key": "metrics-token",
        }
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["image"] == hub["image"]
        assert container["volumeMounts"] == hub["volumeMounts"]


def k8s_config(k8s: dict[tuple[str, str], dict[str, Any]]) -> HubSettings:
    """The ConfigMap's config.toml through the hub's loader, where the pods mount it (its paths are absolute)."""
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "config.toml"
        config.write_text(k8s[("ConfigMap", "mcp-hub-config")]["data"]["config.toml"])
        return settings_under(
            config, {DATABASE_URL_ENV: "postgresql+asyncpg://u:p@db/mcp_hub", METRICS_TOKEN_ENV: FAKE_METRICS_TOKEN}
        )


def test_the_kubernetes_configuration_is_one_the_hub_accepts(tmp_path: Path) -> None:
    k8s = k8s_objects()
    settings = k8s_config(k8s)
    assert settings.auth.enabled
    assert settings.limits.redis_url
    assert (settings.logging.format, settings.metrics.enabled, settings.tracing.enabled) == ("json", True, False)
    annotations = k8s[("Deployment", "mcp-hub")]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == settings.metrics.path
    assert int(annotations["prometheus.io/port"]) == settings.hub.listen_port
    spec = pod_spec(k8s, "Deployment", "mcp-hub")
    (container,) = spec["containers"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume.get("configMap", {}).get("name") for volume in spec["volumes"]}
    config_path = env_of(container)["MCP_HUB_CONFIG"]["value"]
    assert Path(config_path).parent == Path(mounts[next(n for n, m in volumes.items() if m == "mcp-hub-config")])
    assert settings.connectors_dir == Path(mounts[next(n for n, m in volumes.items() if m == "mcp-hub-connectors")])
    connectors = tmp_path / "connectors"
    connectors.mkdir()
    for name, text in k8s[("ConfigMap", "mcp-hub-connectors")]["data"].items():
        (connectors / name).write_text(text)
    for spec_ in load_connectors(connectors):
        assert spec_.transport != "stdio" or spec_.command in REFERENCE_SERVERS


def test_kustomize_renders_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the manifests were checked as YAML only")
    done = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    kinds = sorted(document["kind"] for document in yaml.safe_load_all(done.stdout) if document)
    assert kinds == ["ConfigMap", "ConfigMap", "Deployment", "Job", "Service"]


# --- uvloop and httptools ----------------------------------------------------------------------------------


def test_make_serve_installs_the_fast_extra() -> None:
    makefile = (REPO / "Makefile").read_text()
    install = re.search(r"^\$\(PY_STAMP\):.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert install is not None
    assert re.search(r"pip install .*-e \"\.\[[^\]]*\bfast\b[^\]]*\]\"", install.group(1))
    assert re.search(r"^serve: \$\(PY_STAMP\)", makefile, re.MULTILINE)
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["fast"] == ["uvicorn[standard]>=0.40"]  # uvicorn's extra with uvloop and httptools


def test_serve_runs_uvicorn_on_uvloop_with_httptools_when_they_are_installed() -> None:
    uvloop = pytest.importorskip("uvloop", reason="the fast extra is not installed")
    pytest.importorskip("httptools", reason="the fast extra is not installed")
    config = server_config(Starlette(), settings_under(REPO / "config.toml", {}))
    assert config.get_loop_factory() is uvloop.new_event_loop
    assert any(base.__name__ == "HttpToolsProtocol" for base in cast("type", config.http).__mro__)


# --- the compose topology with plain processes --------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"deploy/config.toml no longer has {old!r}"
    return text.replace(old, new)


@dataclass
class Topology:
    lb_url: str
    replicas: list[Process]
    logs: list[Path]
    """Each replica's output, uvicorn's access log included."""
    environment: dict[str, str]


async def entrypoint(environment: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(60):
        return await anyio.run_process(["sh", str(ENTRYPOINT), *args], env=dict(environment), check=False)


async def wait_ready(url: str, processes: list[Process]) -> None:
    """Poll `/readyz` (external processes: no event to await) until it answers 200."""
    async with httpx2.AsyncClient(timeout=2.0) as http:
        while True:
            for process in processes:
                assert process.returncode is None, f"a process of the topology exited with {process.returncode}"
            try:
                if (await http.get(url + READY_PATH)).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await anyio.sleep(0.1)


@pytest.fixture
async def topology(tmp_path: Path) -> AsyncGenerator[Topology]:
    """deploy/config.toml with only this machine's addresses (loopback, the test PostgreSQL and Redis, the load
    balancer's URL) and deploy/connectors; the entry point migrates once, then two replicas serve without
    migrating, behind deploy/haproxy.cfg."""
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        reason = "haproxy is not installed (Debian: apt-get install haproxy)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the deployment topology")
        pytest.skip(reason)
    await require_redis()
    lb_port, ports = free_port(), [free_port(), free_port()]
    lb_url = f"http://127.0.0.1:{lb_port}"
    text = (DEPLOY / "config.toml").read_text()
    text = replace_once(text, 'listen_host = "0.0.0.0"', 'listen_host = "127.0.0.1"')
    text = replace_once(text, 'public_base_url = "http://localhost:8420"', f'public_base_url = "{lb_url}"')
    text = replace_once(text, 'redis_url = "redis://redis:6379/0"', f'redis_url = "{REDIS_URL}"')
    text = replace_once(text, 'redis_key_prefix = "mcp-hub:limits:"', f'redis_key_prefix = "deploy-{uuid.uuid4()}:"')
    (tmp_path / "config.toml").write_text(text)
    shutil.copytree(DEPLOY / "connectors", tmp_path / "connectors")
    async with fresh_postgres_database() as database_url:
        environment = {
            **{key: value for key, value in os.environ.items() if not key.startswith("MCP_HUB_")},
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            "MCP_HUB_CONFIG": str(tmp_path / "config.toml"),
            DATABASE_URL_ENV: database_url,
        }
        done = await entrypoint(environment, "migrate")
        assert done.returncode == 0, done.stderr.decode()
        replica_environment = {**environment, "MCP_HUB_MIGRATE_ON_START": "0"}
        lb_environment = {
            **os.environ,
            "MCP_HUB_LB_BIND": f"127.0.0.1:{lb_port}",
            **{f"MCP_HUB_REPLICA_{n}": f"127.0.0.1:{port}" for n, port in enumerate(ports, 1)},
        }
        logs = [tmp_path / f"replica-{n}.log" for n, _ in enumerate(ports, 1)]
        processes: list[Process] = []
        try:
            for port, log in zip(ports, logs, strict=True):
                with log.open("wb") as output:
                    command = ["sh", str(ENTRYPOINT), "serve", "--port", str(port)]
                    processes.append(
                        await anyio.open_process(command, env=replica_environment, stdout=output, stderr=output)
                    )
            with (tmp_path / "haproxy.log").open("wb") as output:
                command = [haproxy, "-db", "-f", str(HAPROXY_CFG)]
                processes.append(await anyio.open_process(command, env=lb_environment, stdout=output, stderr=output))
            with anyio.fail_after(120):
                for port in ports:
                    await wait_ready(f"http://127.0.0.1:{port}", processes)
                await wait_ready(lb_url, processes)
            yield Topology(lb_url=lb_url, replicas=processes[:2], logs=logs, environment=environment)
        finally:
            for process in processes:
                await stop_process(process)


@pytest.mark.postgres
@pytest.mark.redis
async def test_the_compose_topology_serves_a_shipped_connector_through_the_load_balancer(topology: Topology) -> None:
    """The image's entry point and configuration as compose runs them, as processes: both replicas on uvloop and
    httptools, an agent created through the entry point (as compose's `cli` service does), its token from the
    token endpoint behind HAProxy, `time__get_current_time` called twice through HAProxy (round robin: once on
    each replica) with that token, whose audience is the load balancer's URL."""
    for replica in topology.replicas:
        maps = await anyio.Path(f"/proc/{replica.pid}/maps").read_text()
        assert "/uvloop/" in maps, "mcp-hub serve did not load uvloop"
        assert "/httptools/" in maps, "mcp-hub serve did not load httptools"
    created = await entrypoint(topology.environment, "agents", "create", "deploy-check", "--grant", "tool:time__*")
    assert created.returncode == 0, created.stderr.decode()
    printed = dict(re.findall(r"(client_id|client_secret):\s+(\S+)", created.stdout.decode()))
    name = "time__get_current_time"
    body = modern_call_body(name, {"timezone": "UTC"})
    headers = modern_call_headers(name)
    async with httpx2.AsyncClient(timeout=30) as http:
        issued = await http.post(
            topology.lb_url + "/oauth/token",
            data={"grant_type": "client_credentials", "resource": topology.lb_url + "/mcp"},
            auth=(printed["client_id"], printed["client_secret"]),
        )
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
        refused = await http.post(topology.lb_url + "/mcp", content=body, headers=headers)
        assert refused.status_code == 401
        assert f"{topology.lb_url}/.well-known/oauth-protected-resource" in refused.headers["www-authenticate"]
        for _ in topology.replicas:
            answered = await http.post(
                topology.lb_url + "/mcp",
                content=body,
                headers={**headers, "Authorization": f"Bearer {token}"},
            )
            assert answered.status_code == 200, answered.text
            result = answered.json()["result"]
            assert result.get("isError") is not True, result
            assert '"timezone": "UTC"' in result["content"][0]["text"]
    for log in topology.logs:
        # deploy/config.toml logs JSON: one object per line, the access log's fields among them.
        lines = [json.loads(line) for line in (await anyio.Path(log).read_text()).splitlines()]
        served = [
            line
            for line in lines
            if (line.get("method"), line.get("path"), line.get("status")) == ("POST", "/mcp", 200)
        ]
        assert served, f"round robin sent no call to {log.name}"


# --- the image ---------------------------------------------------------------------------------------------


def container_builder() -> str | None:
    """A tool that builds a Dockerfile and runs the image: docker (with a daemon), podman or buildah."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True, check=False, timeout=20).returncode == 0:
        return docker
    return shutil.which("podman") or shutil.which("buildah")


def build_command(tool: str) -> list[str]:
    if Path(tool).name == "docker":
        return [tool, "build"]
    # `--format docker`: an OCI image has no HEALTHCHECK.
    isolation = ["--isolation", "chroot"] if Path(tool).name == "buildah" else []
    return [tool, "build", *isolation, "--layers", "--format", "docker"]


def run_in_image(tool: str, image: str, script: str) -> subprocess.CompletedProcess[bytes]:
    """`sh -c script` in a container of `image`, as the image's user."""
    if Path(tool).name != "buildah":
        command = [tool, "run", "--rm", "--entrypoint", "sh", image, "-c", script]
        return subprocess.run(command, capture_output=True, check=False, timeout=120)
    container = subprocess.run([tool, "from", image], capture_output=True, check=True, timeout=120).stdout
    name = container.decode().strip()
    try:
        command = [tool, "run", "--isolation", "chroot", "--user", "10001:10001", name, "--", "sh", "-c", script]
        return subprocess.run(command, capture_output=True, check=False, timeout=120)
    finally:
        subprocess.run([tool, "rm", name], capture_output=True, check=False, timeout=120)


def inspect_image(tool: str, image: str) -> list[str]:
    if Path(tool).name == "buildah":
        return [tool, "inspect", "--type", "image", image]
    return [tool, "image", "inspect", image]


def image_config(tool: str, image: str) -> dict[str, Any]:
    inspected = subprocess.run(inspect_image(tool, image), capture_output=True, check=True, timeout=60)
    details: Any = json.loads(inspected.stdout)
    if isinstance(details, list):  # docker and podman
        return cast("dict[str, Any]", details[0]["Config"])
    return cast("dict[str, Any]", details["Docker"]["config"])  # buildah's own format


@pytest.mark.timeout(1800)  # a cold build fetches and compiles every wheel
def test_the_image_builds_and_holds_the_hub_for_a_non_root_user() -> None:
    """Build the image and look inside: the user, the health check, the entry point, the extras and the reference
    servers. MCP_HUB_TEST_PYTHON_IMAGE replaces the base image (a mirror, or a local stand-in) where the registry
    cannot be reached."""
    tool = container_builder()
    if tool is None:
        pytest.skip("no container builder: docker without a running daemon, no podman, no buildah")
    default_base = next(
        i.arguments.split("=", 1)[1]
        for i in dockerfile_instructions(DOCKERFILE.read_text())
        if i.keyword == "ARG" and i.arguments.startswith("PYTHON_IMAGE=")
    )
    base = os.environ.get("MCP_HUB_TEST_PYTHON_IMAGE", default_base)
    exists = subprocess.run(inspect_image(tool, base), capture_output=True, check=False, timeout=60)
    if exists.returncode != 0:
        pulled = subprocess.run([tool, "pull", base], capture_output=True, check=False, timeout=600)
        if pulled.returncode != 0:
            reason = pulled.stderr.decode().strip().splitlines()[-1:] or ["?"]
            pytest.skip(f"the base image {base} cannot be pulled ({reason[0][:200]}); set MCP_HUB_TEST_PYTHON_IMAGE")
    tag = f"localhost/mcp-hub-test:{uuid.uuid4().hex[:12]}"
    built = subprocess.run(
        [*build_command(tool), "--build-arg", f"PYTHON_IMAGE={base}", "-t", tag, str(REPO)],
        capture_output=True,
        check=False,
        timeout=1800,
    )
    assert built.returncode == 0, built.stdout.decode()[-4000:] + built.stderr.decode()[-4000:]
    try:
        config = image_config(tool, tag)
        assert config["User"] == "10001:10001"
        assert "MCP_HUB_HEALTHCHECK_URL" in json.dumps(config["Healthcheck"])
        assert config["Entrypoint"] == ["tini", "--", "docker-entrypoint"]
        assert config["Cmd"] == ["serve"]
        inside = run_in_image(
            tool,
            tag,
            "set -e; id -u; python -c 'import asyncpg, httptools, uvloop, mcp_hub'; for server in "
            + " ".join(REFERENCE_SERVERS)
            + '; do command -v "$server"; done; mcp-hub --help >/dev/null; git --version >/dev/null; '
            + "test ! -e /usr/bin/gcc",
        )
        assert inside.returncode == 0, inside.stdout.decode() + inside.stderr.decode()
        lines = inside.stdout.decode().split()
        assert lines[0] == "10001"
        for server in REFERENCE_SERVERS:
            assert f"/opt/mcp-hub/bin/{server}" in lines
    finally:
        subprocess.run([tool, "rmi", tag], capture_output=True, check=False, timeout=120)
