"""Settings come from ``ORCH_*`` variables, in one place, with clear errors."""

from __future__ import annotations

import pytest

from service.db.pool import redact
from service.settings import Settings, SettingsError


def test_defaults_point_at_local_services() -> None:
    settings = Settings.from_env({})
    assert settings.database_url.startswith("postgresql://postgres@127.0.0.1")
    assert settings.amqp_url.startswith("amqp://") and "127.0.0.1" in settings.amqp_url
    assert settings.redis_url.startswith("redis://127.0.0.1")
    assert settings.base_url == "http://127.0.0.1:8000"


def test_variables_are_parsed_to_the_field_types() -> None:
    settings = Settings.from_env({"ORCH_API_PORT": "9001", "ORCH_RETRY_BASE_DELAY_S": "0.5",
                                  "ORCH_AGENTS": "echo, sleep", "ORCH_LOG_LEVEL": "debug",
                                  "ORCH_UNKNOWN_THING": "x"})
    assert settings.api_port == 9001
    assert settings.retry_base_delay_s == 0.5
    assert settings.agents == ("echo", "sleep")
    assert settings.log_level == "debug"
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
