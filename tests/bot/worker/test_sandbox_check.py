"""The worker checks at start that a sandbox can start, and says why not: log and admins."""

from __future__ import annotations

import logging
import shutil

import pytest
from sqlalchemy import select

from bot.settings import get_settings
from bot.worker.sandbox_check import check_sandbox
from storage.db import make_engine, session_factory, session_scope, upgrade_database
from storage.models import OutboxMessage


def test_a_worker_without_a_sandbox_says_why_in_its_log_and_to_admins(
    tmp_path, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("CIRCUITBOARD_ADMINS", "UADMIN1,UADMIN2")
    get_settings.cache_clear()
    settings = get_settings()
    upgrade_database(settings.db_url)
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on this "machine"
    with caplog.at_level(logging.ERROR, logger="bot.worker.sandbox_check"):
        problem = check_sandbox(settings)
        assert check_sandbox(settings) == problem  # a restart the same day: no second notice
    assert problem and "bubblewrap (bwrap) is not installed" in problem
    assert any("sandbox: cannot start" in r.getMessage() for r in caplog.records)
    factory = session_factory(make_engine(settings.db_url))
    with session_scope(factory) as session:
        notices = session.scalars(select(OutboxMessage)).all()
        assert sorted(n.payload["channel"] for n in notices) == ["UADMIN1", "UADMIN2"]
        assert all("cannot start its sandbox" in n.payload["text"] for n in notices)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap NOT installed")
def test_a_worker_with_a_sandbox_logs_its_limits(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="bot.worker.sandbox_check"):
        assert check_sandbox(get_settings()) is None
    assert any("sandbox: ok" in r.getMessage() for r in caplog.records)
