"""Settings: embedded defaults, the CIRCUITBOARD_ prefix, .env files, and secrets kept secret."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.settings import Settings, get_settings, redact_url

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "CIRCUITBOARD_SLACK_BOT_TOKEN": "xoxb-bot-token-value",
    "CIRCUITBOARD_SLACK_APP_TOKEN": "xapp-app-token-value",
    "CIRCUITBOARD_SLACK_SIGNING_SECRET": "signing-secret-value",
    "CIRCUITBOARD_VERIFICATION_SEED": "seed-secret-value",
    "CIRCUITBOARD_DATABASE_URL": "postgresql+psycopg://bot:db-password-value@db:5432/circuitboard",
    "CIRCUITBOARD_BROKER_URL": "redis://:redis-password-value@redis:6379/0",
}


def test_defaults_run_embedded_on_one_sqlite_file_in_console_mode(tmp_path: Path) -> None:
    settings = get_settings()
    database = (tmp_path / "data" / "circuitboard.db").resolve()
    assert settings.db_url == f"sqlite:///{database}"
    assert settings.effective_broker_url == f"sqla+sqlite:///{database}"
    assert settings.console_mode
    assert settings.slack_bot_token is None and settings.slack_app_token is None
    assert settings.admins == []
    assert settings.timezone == "UTC"


def test_default_data_dir_is_dot_circuitboard_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CIRCUITBOARD_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.data_dir == Path(".circuitboard")
    assert (
        settings.db_url == f"sqlite:///{tmp_path.resolve() / '.circuitboard' / 'circuitboard.db'}"
    )
    assert settings.ensure_data_dir().is_dir()


def test_environment_needs_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCUITBOARD_DATABASE_URL", "postgresql+psycopg://db/prefixed")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://db/unprefixed")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-unprefixed")
    settings = Settings()
    assert settings.db_url == "postgresql+psycopg://db/prefixed"
    assert settings.console_mode


def test_a_bot_token_leaves_console_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRCUITBOARD_SLACK_BOT_TOKEN", "xoxb-1")
    assert not Settings().console_mode


def test_dotenv_in_the_working_directory_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    """Run in a fresh process: the real defaults, nothing patched."""
    (tmp_path / ".env").write_text(
        "CIRCUITBOARD_SLACK_BOT_TOKEN=xoxb-from-dotenv\n"
        "CIRCUITBOARD_ADMINS=U1,U2\n"
        "CIRCUITBOARD_TIMEZONE=Europe/Paris\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCUITBOARD_")}
    env["CIRCUITBOARD_TIMEZONE"] = "Asia/Tokyo"
    env["PYTHONPATH"] = str(ROOT)
    code = (
        "import json; from bot.settings import Settings; s = Settings(); print(json.dumps("
        "[s.slack_bot_token.get_secret_value(), s.admins, s.timezone]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["xoxb-from-dotenv", ["U1", "U2"], "Asia/Tokyo"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("U1", ["U1"]),
        ("U1,U2", ["U1", "U2"]),
        (" U1 , U2 ,, U3 ,", ["U1", "U2", "U3"]),
        ("", []),
    ],
)
def test_admins_are_comma_separated(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CIRCUITBOARD_ADMINS", raw)
    assert Settings().admins == expected


def _secret_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    return Settings()


def _leaked(text: str) -> list[str]:
    return [
        marker for marker in ("token-value", "secret-value", "password-value") if marker in text
    ]


def test_secrets_are_secretstr_and_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _secret_settings(monkeypatch)
    for name in ("slack_bot_token", "slack_app_token", "slack_signing_secret"):
        assert isinstance(getattr(settings, name), SecretStr), name
    secret_fields = [
        n for n, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)
    ]
    assert {"slack_bot_token", "slack_app_token", "slack_signing_secret"} <= set(secret_fields)
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-bot-token-value"
    assert "db-password-value" in settings.db_url  # the code that connects still gets it


def test_secrets_never_appear_in_repr_str_or_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _secret_settings(monkeypatch)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("circuitboard.test").info("settings: %s / %r", settings, settings)
    for text in (
        repr(settings),
        str(settings),
        f"{settings}",
        caplog.text,
        settings.model_dump_json(),
    ):
        assert _leaked(text) == [], text
    assert "bot:***@db:5432" in repr(settings)
    assert "redis://:***@redis:6379/0" in repr(settings)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://bot:pw@db:5432/x", "postgresql+psycopg://bot:***@db:5432/x"),
        ("redis://:pw@redis:6379/0", "redis://:***@redis:6379/0"),
        (
            "postgresql+psycopg://postgres@127.0.0.1/test",
            "postgresql+psycopg://postgres@127.0.0.1/test",
        ),
        ("sqlite:////data/circuitboard.db", "sqlite:////data/circuitboard.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
