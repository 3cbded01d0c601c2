"""Configuration: `config.toml` and `connectors/<id>.toml`, loaded all-or-nothing with errors that say where.

Issue 2 §3 asks that a bad file stop the hub with a message naming the file, the key and the problem;
these tests load real files from a temporary directory (no mocks) and read that message.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_hub.config.connectors import load_connector, load_connectors
from mcp_hub.config.settings import DATABASE_URL_ENV, CatalogSection, LimitsSection, StreamsSection, load_settings
from mcp_hub.errors import ConfigError
from tests.conftest import REPO, connector_toml, fault_connector, write_config


@pytest.fixture(autouse=True)
def _no_database_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's or CI's `MCP_HUB_DATABASE_URL` must not leak into what these tests read."""
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)


def http_connector(connector_id: str = "remote", **fields: Any) -> str:
    defaults: dict[str, Any] = {"id": connector_id, "transport": "http", "url": "https://mcp.example.com/mcp"}
    return connector_toml(**{**defaults, **fields})


def config_error_for(directory: Path, file_id: str, text: str) -> ConfigError:
    """Load a connectors directory holding one good connector and `<file_id>.toml`; return the error."""
    write_config(directory, {"good": fault_connector("good"), file_id: text})
    with pytest.raises(ConfigError) as caught:
        load_connectors(directory / "connectors")
    return caught.value


def test_a_valid_config_and_its_connectors_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 2 §3: the settings and every connector file load, sorted by id, with defaults filled in."""
    monkeypatch.setenv("HUB_TEST_API_TOKEN", "t0ken")
    config = write_config(
        tmp_path,
        {
            "faults": fault_connector(call_timeout_seconds=2),
            "remote": http_connector(headers={"Authorization": "Bearer ${HUB_TEST_API_TOKEN}"}),
            "old-sse": connector_toml(id="old-sse", transport="sse", protocol="legacy", url="http://127.0.0.1:9/sse"),
        },
        extra='[hub]\nlisten_port = 9000\nmcp_path = "/gateway/"\n',
    )

    settings = load_settings(config)
    specs = load_connectors(settings.connectors_dir)

    assert settings.hub.listen_port == 9000
    assert settings.hub.mcp_path == "/gateway"
    assert settings.timeouts.connect_seconds == 20
    assert (settings.catalog.page_size, settings.catalog.page_max_bytes) == (2000, 512 * 1024)
    assert [spec.id for spec in specs] == ["faults", "old-sse", "remote"]
    faults, old_sse, remote = specs
    assert (faults.transport, faults.protocol, faults.call_timeout_seconds) == ("stdio", "legacy", 2)
    assert (old_sse.transport, old_sse.protocol) == ("sse", "legacy")
    assert (remote.transport, remote.protocol, remote.enabled) == ("http", "auto", True)


def test_the_shipped_config_and_connectors_load() -> None:
    """Our choice: the repository's own `config.toml` and `connectors/` are examples that must stay valid."""
    settings = load_settings(REPO / "config.toml")
    specs = load_connectors(settings.connectors_dir)
    assert settings.connectors_dir == REPO / "connectors"
    assert {spec.id for spec in specs} >= {"time"}


BAD_CONNECTORS: list[Any] = [
    pytest.param(
        "Bad_Id", connector_toml(id="Bad_Id", transport="stdio", command="x"), "id", "lowercase", id="id-shape"
    ),
    pytest.param("other", fault_connector("faults"), "id", "must equal the file name 'other'", id="id-not-file-name"),
    pytest.param("typo", fault_connector("typo", comand="x"), "comand", "unknown key", id="unknown-key"),
    pytest.param(
        "ws", connector_toml(id="ws", transport="websocket", url="https://x"), "transport", "'stdio'", id="transport"
    ),
    pytest.param("nocmd", connector_toml(id="nocmd", transport="stdio"), "command", "needs", id="stdio-no-command"),
    pytest.param("nourl", connector_toml(id="nourl", transport="http"), "url", "needs", id="http-no-url"),
    pytest.param("ftp", http_connector("ftp", url="ftp://example.com/mcp"), "url", "http:// or https://", id="scheme"),
    pytest.param(
        "mixed", fault_connector("mixed", url="http://127.0.0.1:9/mcp"), "url", "not stdio", id="stdio-with-url"
    ),
    pytest.param(
        "literal-header",
        http_connector("literal-header", headers={"Authorization": "Bearer abc"}),
        "headers",
        "'Authorization' looks like a credential",
        id="literal-secret-header",
    ),
    pytest.param(
        "literal-env",
        fault_connector("literal-env", env={"GITHUB_TOKEN": "ghp_x"}),
        "env",
        "'GITHUB_TOKEN' looks like a credential",
        id="literal-secret-env",
    ),
    pytest.param(
        "unset-var",
        fault_connector("unset-var", env={"GITHUB_TOKEN": "${HUB_TEST_UNSET_VARIABLE}"}),
        "env",
        "not set: HUB_TEST_UNSET_VARIABLE",
        id="unset-reference",
    ),
    pytest.param(
        "modern-sse",
        connector_toml(id="modern-sse", transport="sse", protocol="2026-07-28", url="http://127.0.0.1:9/sse"),
        "protocol",
        "only speaks the 2025-11-25 era",
        id="sse-modern",
    ),
    pytest.param("broken", 'id = "broken"\ntransport = stdio\n', "line 2", "not valid TOML", id="toml-syntax"),
    pytest.param(
        "literal-oauth",
        http_connector(
            "literal-oauth",
            oauth={"token_url": "https://as.example.com/token", "client_id": "hub", "client_secret": "s3cret"},
        ),
        "oauth.client_secret",
        "reference",
        id="literal-oauth-secret",
    ),
    pytest.param(
        "stdio-oauth",
        fault_connector(
            "stdio-oauth",
            oauth={"token_url": "https://as.example.com/token", "client_id": "hub", "client_secret": "${X_SECRET}"},
        ),
        "oauth",
        "for http and sse connectors",
        id="oauth-on-stdio",
    ),
]


@pytest.mark.parametrize(("file_id", "text", "key", "problem"), BAD_CONNECTORS)
def test_a_bad_connector_file_stops_loading_with_an_error_naming_the_file_the_key_and_the_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_id: str, text: str, key: str, problem: str
) -> None:
    """Issue 2 §3 (our choice of checks, all-or-nothing): one bad file fails the whole directory, and says where.

    For a TOML syntax error the "key" is the line the parser stopped at.
    """
    monkeypatch.delenv("HUB_TEST_UNSET_VARIABLE", raising=False)
    error = config_error_for(tmp_path, file_id, text)
    bad_file = tmp_path / "connectors" / f"{file_id}.toml"
    message = str(error)
    assert error.file == str(bad_file)
    assert message.startswith(f"{bad_file}: ")
    assert key in message
    assert problem in message
    assert "Value error" not in message  # pydantic's wording stays inside the hub


def test_an_unset_reference_is_allowed_in_a_disabled_connector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our choice: a disabled connector never connects, so its references need not be set yet."""
    monkeypatch.delenv("HUB_TEST_UNSET_VARIABLE", raising=False)
    write_config(
        tmp_path, {"later": fault_connector("later", enabled=False, env={"API_KEY": "${HUB_TEST_UNSET_VARIABLE}"})}
    )
    (spec,) = load_connectors(tmp_path / "connectors")
    assert spec.enabled is False


def test_references_are_kept_in_the_spec_and_expanded_only_when_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 2 §3, our choice: secrets live in the environment; the spec (and its fingerprint) keep `${NAME}`."""
    monkeypatch.setenv("HUB_TEST_GITHUB_TOKEN", "ghp_secret_value")
    monkeypatch.setenv("HUB_TEST_API_TOKEN", "api_secret_value")
    write_config(
        tmp_path,
        {
            "gh": fault_connector("gh", env={"GITHUB_TOKEN": "${HUB_TEST_GITHUB_TOKEN}", "MODE": "plain"}),
            "remote": http_connector(headers={"Authorization": "Bearer ${HUB_TEST_API_TOKEN}"}),
        },
    )
    gh = load_connector(tmp_path / "connectors" / "gh.toml")
    remote = load_connector(tmp_path / "connectors" / "remote.toml")

    assert gh.env == {"GITHUB_TOKEN": "${HUB_TEST_GITHUB_TOKEN}", "MODE": "plain"}
    assert remote.headers == {"Authorization": "Bearer ${HUB_TEST_API_TOKEN}"}
    assert "secret_value" not in gh.model_dump_json() + remote.model_dump_json()
    assert gh.resolved_env() == {"GITHUB_TOKEN": "ghp_secret_value", "MODE": "plain"}
    assert remote.resolved_headers() == {"Authorization": "Bearer api_secret_value"}

    fingerprint = gh.fingerprint
    monkeypatch.setenv("HUB_TEST_GITHUB_TOKEN", "rotated")
    assert gh.resolved_env()["GITHUB_TOKEN"] == "rotated"
    assert gh.fingerprint == fingerprint


def test_relative_paths_resolve_against_the_config_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 2 §3, our choice: `mcp-hub --config /etc/mcp-hub/config.toml` works from any working directory."""
    home = (tmp_path / "etc" / "hub").resolve()
    home.mkdir(parents=True)
    (home / "config.toml").write_text(
        '[hub]\nconnectors_dir = "conn.d"\n[database]\nurl = "sqlite+aiosqlite:///data/hub.db"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    settings = load_settings(Path("..") / "etc" / "hub" / "config.toml")

    assert settings.config_path == home / "config.toml"
    assert settings.connectors_dir == home / "conn.d"
    assert settings.database.url == f"sqlite+aiosqlite:///{home / 'data' / 'hub.db'}"


def test_absolute_and_in_memory_sqlite_urls_are_left_alone(tmp_path: Path) -> None:
    """Our choice: only a relative SQLite path is rewritten."""
    absolute = tmp_path / "abs.db"
    (tmp_path / "a.toml").write_text(f'[database]\nurl = "sqlite+aiosqlite:///{absolute}"\n')
    (tmp_path / "m.toml").write_text('[database]\nurl = "sqlite+aiosqlite:///:memory:"\n')
    assert load_settings(tmp_path / "a.toml").database.url == f"sqlite+aiosqlite:///{absolute}"
    assert load_settings(tmp_path / "m.toml").database.url == "sqlite+aiosqlite:///:memory:"


def test_the_database_url_environment_variable_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 2 §3, our choice: `MCP_HUB_DATABASE_URL` replaces `database.url` (containers, CI)."""
    config = write_config(tmp_path, {})
    override = f"sqlite+aiosqlite:///{tmp_path / 'override.db'}"
    monkeypatch.setenv(DATABASE_URL_ENV, override)
    assert load_settings(config).database.url == override

    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql+asyncpg://hub@db.example:5432/mcp_hub")
    assert load_settings(config).database.url == "postgresql+asyncpg://hub@db.example:5432/mcp_hub"


def test_a_bad_database_url_override_names_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our choice: the error says the bad value came from the environment, not from the file."""
    config = write_config(tmp_path, {})
    monkeypatch.setenv(DATABASE_URL_ENV, "mysql://hub@db/mcp_hub")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.file == "$MCP_HUB_DATABASE_URL"
    assert "must start with one of sqlite+aiosqlite://, postgresql+asyncpg://" in str(caught.value)


def test_a_bad_database_url_override_does_not_echo_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our choice (style.md §11, redaction): a secret in a rejected URL never reaches the terminal or logs."""
    config = write_config(tmp_path, {})
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://hub:hunter2@db.example/mcp_hub")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "hunter2" not in str(caught.value)
    assert "postgresql+asyncpg://" in str(caught.value)  # still says what is wrong


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        pytest.param("[hub]\nlisten_prot = 8080\n", "hub.listen_prot", "unknown key", id="unknown-key"),
        pytest.param("[hubb]\nlisten_port = 8080\n", "hubb", "unknown key", id="unknown-section"),
        pytest.param("[hub]\nlisten_port = 70000\n", "hub.listen_port", "65535", id="port-range"),
        pytest.param('[hub]\nmcp_path = "mcp"\n', "hub.mcp_path", "must start with '/'", id="mcp-path"),
        pytest.param('[hub]\npublic_base_url = "hub.example.com"\n', "hub.public_base_url", "http", id="base-url"),
        pytest.param("[catalog]\npage_size = 0\n", "catalog.page_size", "greater than 0", id="page-size"),
    ],
)
def test_a_bad_setting_raises_an_error_naming_the_file_and_the_key(
    tmp_path: Path, extra: str, key: str, problem: str
) -> None:
    """Issue 2 §3: settings are checked like connectors (the file, the dotted key, the problem)."""
    config = write_config(tmp_path, {}, extra=extra)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert (caught.value.file, caught.value.key) == (str(config), key)
    assert str(caught.value).startswith(f"{config}: {key}: ")
    assert problem in caught.value.problem


def test_a_missing_config_file_or_connectors_directory_is_a_config_error(tmp_path: Path) -> None:
    """Our choice: a wrong `--config` path is reported as such, never as a traceback."""
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="connectors directory not found"):
        load_connectors(tmp_path / "nope")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "hub.example.com", "::"])  # noqa: S104 - the point
def test_auth_can_only_be_turned_off_on_a_loopback_listener(tmp_path: Path, host: str) -> None:
    """Issue 3 §7 (fail closed, style.md §9): `[auth] enabled = false` on a reachable address is refused."""
    config = write_config(tmp_path, {}, extra=f'[hub]\nlisten_host = "{host}"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.key == "auth.enabled"
    assert "loopback" in str(caught.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_auth_off_is_accepted_on_loopback_but_not_after_a_host_override(tmp_path: Path, host: str) -> None:
    """Our choice: `mcp-hub serve --host 0.0.0.0` cannot expose an unauthenticated hub either."""
    settings = load_settings(write_config(tmp_path, {}, extra=f'[hub]\nlisten_host = "{host}"\n'))
    assert settings.auth.enabled is False
    with pytest.raises(ConfigError, match="loopback"):
        settings.with_listen("0.0.0.0", None)  # noqa: S104 - the point


def test_the_default_configuration_has_auth_on_and_short_tokens() -> None:
    """Issue 3 §3: tokens last minutes by default, at most an hour."""
    settings = load_settings(REPO / "config.toml")
    assert settings.auth.enabled is True
    assert settings.auth.access_token_ttl_seconds == 300
    assert settings.mcp_resource_url == "http://127.0.0.1:8420/mcp"


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        pytest.param('webhook_url = "https://hooks.example.com/x"\n', "needs a webhook_secret", id="unsigned"),
        pytest.param(
            'webhook_url = "http://hooks.example.com/x"\nwebhook_secret = "${S}"\n', "must be https", id="plain-http"
        ),
        pytest.param('approvers = ["team:ops"]\n', "role:approver", id="bad-approver"),
        pytest.param('when = [{ field = "n", op = ">", value = "ten" }]\n', "numeric", id="non-numeric-threshold"),
        pytest.param('when = [{ field = "n", op = ">", value = true }]\n', "numeric", id="boolean-threshold"),
        pytest.param('when = [{ field = "p", op = "matches", value = "(" }]\n', "regular expression", id="bad-regex"),
    ],
)
def test_a_bad_approval_rule_is_refused_naming_the_problem(tmp_path: Path, rule: str, problem: str) -> None:
    """Issue 4 §1, T22 (our choice): webhooks are always signed and go to https; rules are checked at start."""
    extra = f'[[approvals.rules]]\nname = "r"\ntools = ["x__*"]\n{rule}'
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, {}, extra=extra))
    assert caught.value.key is not None
    assert caught.value.key.startswith("approvals.rules")
    assert problem in str(caught.value)


def test_the_shipped_config_lists_the_stream_bounds_with_their_defaults() -> None:
    """Our choice: config.toml shows every key with its default; `[streams]` (resumable 2025-11-25 streams)
    included."""
    assert load_settings(REPO / "config.toml").streams == StreamsSection()


@pytest.mark.parametrize(
    ("streams", "key", "problem"),
    [
        pytest.param("retry_ms = 0\n", "streams.retry_ms", "greater than or equal to 100", id="retry-zero"),
        pytest.param("max_events = 0\n", "streams.max_events", "greater than 0", id="no-events"),
        pytest.param(
            "max_events_per_stream = 5000\n", "streams", "max_events_per_stream <= max_events_per_session", id="nesting"
        ),
        pytest.param("max_age_seconds = 0.5\n", "streams", "must outlast retry_ms", id="age-below-retry"),
    ],
)
def test_stream_bounds_that_cannot_work_are_refused(tmp_path: Path, streams: str, key: str, problem: str) -> None:
    """Our choice: bounds that keep nothing, nest the wrong way, or expire events before a client reconnects are
    configuration errors naming the key, not a silent way to lose resumability."""
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, {}, extra=f"[streams]\n{streams}"))
    assert caught.value.key == key
    assert problem in str(caught.value)


def test_the_shipped_config_lists_the_catalog_settings_with_their_defaults() -> None:
    """Our choice: config.toml shows every key with its default; `[catalog]` included (pages of at most 2,000
    entries and 512 KiB)."""
    assert load_settings(REPO / "config.toml").catalog == CatalogSection()


def test_the_shipped_config_lists_the_limits_with_their_defaults() -> None:
    """Our choice: config.toml shows every key with its default; `[limits]` (issue 10) included."""
    assert load_settings(REPO / "config.toml").limits == LimitsSection()


@pytest.mark.parametrize(
    ("limits", "key", "problem"),
    [
        pytest.param('redis_url = "localhost:6379"\n', "limits.redis_url", "expected redis://", id="redis-url"),
        pytest.param("per_agent = { rate = 0, burst = 1 }\n", "limits.per_agent.rate", "greater than 0", id="rate"),
        pytest.param('on_backend_failure = "maybe"\n', "limits.on_backend_failure", "'open' or 'closed'", id="fail"),
    ],
)
def test_a_bad_limit_names_its_key(tmp_path: Path, limits: str, key: str, problem: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[limits]\n" + limits)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.key == key
    assert problem in str(caught.value)


SEAL_KEY_ENV = "HUB_TEST_AUDIT_SEAL_KEY"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param(None, f"the environment variable {SEAL_KEY_ENV} is unset or empty", id="unset"),
        pytest.param("c2hvcnQgYW5kIHdlYWs=", "decodes to 14 bytes; a seal key needs at least 32", id="short"),
        pytest.param("A" * 44, "is not random (too few distinct bytes)", id="placeholder"),
        pytest.param("change me, please: " * 3, "is not base64", id="not-base64"),
    ],
)
def test_a_seal_key_that_is_unset_or_no_key_stops_loading_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, problem: str
) -> None:
    """Threat T24, our choice (fail closed, style.md §9): a configured seal key is usable at start or the hub does
    not start (never an unsealed trail by accident); the message names the variable, never the value."""
    if value is None:
        monkeypatch.delenv(SEAL_KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(SEAL_KEY_ENV, value)
    config = write_config(tmp_path, {}, extra=f'[audit]\nseal_key = "${{{SEAL_KEY_ENV}}}"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.key == "audit.seal_key"
    assert problem in caught.value.problem
    assert value is None or value not in str(caught.value)


def test_a_seal_key_written_into_the_file_is_refused(tmp_path: Path) -> None:
    """Our choice: like every secret of `config.toml`, the key is a `${VAR}` reference to the environment."""
    config = write_config(tmp_path, {}, extra='[audit]\nseal_key = "bXkgdmVyeSBvd24gc2VhbCBrZXksIGluIHRoZSBmaWxl"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.key == "audit.seal_key"
    assert "reference" in caught.value.problem


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode], ids=["base64", "base64url"])
def test_a_seal_key_is_read_from_the_environment_in_either_base64_alphabet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encode: Callable[[bytes], bytes]
) -> None:
    """Our choice: `openssl rand -base64 32` and `secrets.token_urlsafe(32)` (unpadded base64url) both give a key."""
    secret = bytes(range(200, 240))
    monkeypatch.setenv(SEAL_KEY_ENV, encode(secret).decode().rstrip("=") + "\n")
    config = write_config(tmp_path, {}, extra=f'[audit]\nseal_key = "${{{SEAL_KEY_ENV}}}"\n')
    assert load_settings(config).audit_seal_secret == secret
    assert load_settings(write_config(tmp_path, {})).audit_seal_secret is None
