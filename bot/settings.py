"""Settings from the environment (prefix ``CIRCUITBOARD_``) and ``.env``.

The defaults make an embedded install work with nothing configured: a SQLite database and broker
under ``data_dir``, no Slack tokens (console mode), a local worker.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_serializer, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")


def redact_url(url: str) -> str:
    """``scheme://user:***@host/...``: a URL safe to print or log."""
    return _URL_PASSWORD.sub(r"\1***@", url)


class Settings(BaseSettings):
    """Secrets are ``SecretStr``; URL passwords are masked in ``repr``/``str`` too."""

    model_config = SettingsConfigDict(
        env_prefix="CIRCUITBOARD_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path(".circuitboard")
    database_url: str | None = None
    """SQLAlchemy URL; defaults to ``sqlite:///<data_dir>/circuitboard.db``."""
    broker_url: str | None = None
    """Celery broker; defaults to kombu's SQLAlchemy transport on the same SQLite file."""

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    admins: Annotated[list[str], NoDecode] = []
    """Slack user ids with the admin role from the start (comma-separated)."""
    timezone: str = "UTC"
    """Zone in which times are shown and parsed for admins (stored in UTC)."""

    # Verification jobs (bot/queue.py, bot/worker/, bot/services/leases.py and sweeper.py).
    lease_seconds: float = 60.0
    """A worker's claim on a running submission lasts this long unless renewed (every quarter of it)."""
    max_attempts: int = 3
    """Attempts per verification run (a worker died or vanished each time) before it is failed."""
    task_time_limit: float = 600.0
    """Seconds one verification may run; past it the submission fails with a message."""
    requeue_after: float = 300.0
    """A submission queued this long without starting has its lost message re-sent by the sweeper."""
    daily_submission_limit: int = 20
    """Uploads per user per 24 hours (runs failed or cancelled by the system do not count)."""
    max_upload_bytes: int = 1_000_000
    """Uploads above this are refused before anything is stored."""
    verification_seed: SecretStr | None = None
    """Secret seed for the held-out inputs; unset: a random one kept in ``data_dir`` (one machine)."""
    gpu_workers: bool = False
    """A worker consumes the ``gpu`` queue: route puzzles whose ``[verify] device`` is gpu there."""
    unsafe_no_sandbox: bool = False
    """Run submissions without bubblewrap (trusted local trials only; never on a shared server)."""
    verify_overrides: dict[str, Any] = {}
    """JSON object merged into every puzzle's ``[verify]`` table, e.g. ``{"heldout_size": 200}``."""

    round_open_hour: int = Field(17, ge=0, le=23)
    """Default cadence: a round opens on the 1st of the month at this hour (``timezone``)."""
    hint_interval_days: int = Field(7, ge=1)
    """Seeding a round's hints from the puzzle's hints.md: one hint every this many days."""
    schedule_tick_seconds: float = Field(30.0, gt=0)
    """How often the scheduler opens/closes rounds, releases hints and flushes the outbox."""
    schedule_grace_hours: float = Field(6.0, ge=0)
    """A post whose time passed while the bot was down is still posted if at most this late
    (admins are told); later ones are reported to admins, not posted."""
    admin_channel: str | None = None
    """Channel for scheduler notices to admins (missed/late posts); unset: DM each admin."""

    @field_validator("admins", mode="before")
    @classmethod
    def _split_admins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_serializer("database_url", "broker_url")
    def _redact_url_in_dumps(self, value: str | None) -> str | None:
        return None if value is None else redact_url(value)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name in {"database_url", "broker_url"} and isinstance(value, str):
                value = redact_url(value)
            yield name, value

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'circuitboard.db').resolve()}"

    @property
    def effective_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        return f"sqla+sqlite:///{(self.data_dir / 'circuitboard.db').resolve()}"

    @property
    def console_mode(self) -> bool:
        """No Slack token: run the console adapter instead of connecting to Slack."""
        return self.slack_bot_token is None

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir


@lru_cache
def get_settings() -> Settings:
    return Settings()
