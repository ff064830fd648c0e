"""Settings come from ``ORCH_*`` variables, in one place, with clear errors."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from alerts.links import Deployment
from catalog.panels import Panel
from service import settings as settings_module
from service.db.pool import redact
from service.settings import (
    CHECKOUT_ROOT,
    SECTIONS,
    Settings,
    SettingsError,
    default_state_dir,
    unknown_variables,
)

pytestmark = pytest.mark.unit


def test_defaults_point_at_local_services() -> None:
    settings = Settings.from_env({})
    assert settings.database.url.startswith("postgresql://postgres@127.0.0.1")
    assert settings.broker.url.startswith("amqp://") and "127.0.0.1" in settings.broker.url
    assert settings.redis.url.startswith("redis://127.0.0.1")
    assert settings.api.base_url == "http://127.0.0.1:8000"


def test_variables_are_parsed_to_the_field_types() -> None:
    settings = Settings.from_env({"ORCH_API_PORT": "9001", "ORCH_RETRY_BASE_DELAY_S": "0.5",
                                  "ORCH_AGENTS": "echo, sleep", "ORCH_LOG_LEVEL": "debug",
                                  "ORCH_UNKNOWN_THING": "x"})
    assert settings.api.port == 9001
    assert settings.tasks.retry_base_delay_s == 0.5
    assert settings.worker.agents == ("echo", "sleep")
    assert settings.telemetry.log_level == "debug"
    assert settings.extra == {"ORCH_UNKNOWN_THING": "x"}


def test_a_wrong_type_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="ORCH_API_PORT='eighty': expected int"):
        Settings.from_env({"ORCH_API_PORT": "eighty"})


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://user:pw@db:5432/x", "postgresql://user:***@db:5432/x"),
    ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("postgresql://user@db/x", "postgresql://user@db/x"),
])
def test_urls_are_printed_without_passwords(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_the_state_folder_is_absolute_and_the_checkouts_own_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.state_path == CHECKOUT_ROOT / ".orchestrator"
    assert settings.stack_dir == CHECKOUT_ROOT / ".orchestrator" / "stack"


def test_a_relative_state_folder_is_taken_from_the_folder_it_is_read_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"ORCH_STATE_DIR": "state"})
    monkeypatch.chdir("/")
    assert settings.state_path == tmp_path / "state"  # fixed once, whatever the cwd later


def test_outside_a_checkout_state_goes_to_the_xdg_state_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "CHECKOUT_ROOT", tmp_path / "site-packages")
    assert default_state_dir({"XDG_STATE_HOME": str(tmp_path / "xdg")}) == str(
        tmp_path / "xdg" / "orchestrator")
    assert default_state_dir({"HOME": str(tmp_path)}) == str(
        tmp_path / ".local" / "state" / "orchestrator")


@pytest.mark.parametrize(("environ", "public"), [
    ({}, "http://127.0.0.1:8000"),
    ({"ORCH_API_PORT": "8300"}, "http://127.0.0.1:8300"),
    ({"ORCH_API_HOST": "0.0.0.0", "ORCH_API_PORT": "8300"}, "http://127.0.0.1:8300"),
    ({"ORCH_PUBLIC_URL": "https://orchestrator.example.com/"},
     "https://orchestrator.example.com"),
])
def test_the_public_url_follows_the_api_address_unless_set(
        environ: dict[str, str], public: str) -> None:
    settings = Settings.from_env(environ)
    assert settings.api.public_base_url == public
    deployment = Deployment.from_settings(settings)
    assert deployment.runbook_url("AgentsMissing") == f"{public}/runbook#agentsmissing"


def test_links_and_runbook_commands_follow_the_deployment_settings() -> None:
    settings = Settings.from_env({
        "ORCH_API_PORT": "8300", "ORCH_GRAFANA_URL": "https://grafana.example.com",
        "ORCH_DATABASE_URL": "postgresql://app:secret@db.internal:6432/orch",
        "ORCH_AMQP_URL": "amqp://guest:guest@mq:5672/orch", "ORCH_RABBITMQ_NODE": "rabbit@mq"})
    deployment = Deployment.from_settings(settings)
    assert deployment.dashboard_url(Panel("orch-api", 2, "x")) == (
        "https://grafana.example.com/d/orch-api?viewPanel=2")
    assert deployment.command("{psql} -c \"SELECT 1\"") == (
        'psql "postgresql://app@db.internal:6432/orch" -c "SELECT 1"')  # never the password
    assert deployment.command("{rabbitmqctl} list_queues -p {vhost}") == (
        "rabbitmqctl -n rabbit@mq list_queues -p orch")
    assert deployment.command("curl {api}/health/ready") == (
        "curl http://127.0.0.1:8300/health/ready")
    assert deployment.command("tail {logs}/api.log") == (
        f"tail {settings.state_path}/stack/logs/api.log")


def test_every_variable_sets_exactly_one_setting_of_one_section() -> None:
    variables = [f.metadata["env"] for section in SECTIONS.values() for f in fields(section)
                 if "env" in f.metadata]
    assert len(variables) == len(set(variables)) > 60
    settings = Settings.from_env({f"ORCH_{v}": "7" for v in ("DB_POOL_MAX", "API_PORT")})
    assert settings.database.pool_max == 7 and settings.api.port == 7


def test_overrides_are_named_as_their_variables_and_an_unknown_name_is_refused() -> None:
    changed = Settings().with_overrides(api_port=8301, db_pool_max=4, state_dir="/x")
    assert (changed.api.port, changed.database.pool_max, changed.state_dir) == (8301, 4, "/x")
    assert changed.api.host == Settings().api.host  # the rest of the section is kept
    with pytest.raises(TypeError, match="no setting is read from ORCH_NO_SUCH_THING"):
        Settings().with_overrides(no_such_thing=1)


def test_a_variable_no_setting_reads_is_named_with_the_one_meant() -> None:
    settings = Settings.from_env({"ORCH_API_PROT": "8300", "ORCH_API_PORT": "8301"})
    assert unknown_variables(settings) == [
        "ORCH_API_PROT is not a setting of the orchestrator and is ignored"
        " (did you mean ORCH_API_PORT?)"]
    assert unknown_variables(Settings.from_env({"ORCH_API_PORT": "8301"})) == []
