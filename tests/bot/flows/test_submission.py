"""The submission flow's publish: only after the commit, never for a rolled-back transaction, and
a refused publish is recovered by the sweeper (no commit hook does any of it)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from support.queue import seed_round, solution

from bot import queue
from bot.flows import submission as submission_flow
from bot.queue import queue_depth
from bot.services import submissions
from bot.settings import get_settings
from storage.db import make_engine, session_factory, session_scope, upgrade_database
from storage.models import Submission, SubmissionStatus, utcnow


@pytest.fixture
def env(database_url, monkeypatch):
    monkeypatch.setenv("CIRCUITBOARD_DATABASE_URL", database_url)
    get_settings.cache_clear()
    settings = get_settings()
    upgrade_database(settings.db_url)
    factory = session_factory(make_engine(settings.db_url))
    return settings, factory, seed_round(factory)


def _create(session, round_id: int, tag: str = "") -> int:
    return submissions.create_submission(
        session=session,
        round_id=round_id,
        user_id="U1",
        filename="solution.py",
        content=solution(tag=tag),
    ).id


def test_a_refused_publish_leaves_the_row_queued_for_the_sweeper(env, monkeypatch, caplog):
    settings, factory, round_id = env

    def broker_down(**_):
        raise ConnectionError("broker down")

    monkeypatch.setattr(queue, "enqueue_verification", broker_down)
    with (
        caplog.at_level(logging.WARNING, logger="bot.flows.submission"),
        submission_flow.unit_of_work(factory) as session,
    ):
        sid = _create(session, round_id)
    assert "the sweeper will re-send it" in caplog.text
    monkeypatch.undo()
    with session_scope(factory) as session:
        assert session.get(Submission, sid).status == SubmissionStatus.QUEUED
    assert queue_depth(settings)["cpu"] == 0
    later = utcnow() + timedelta(seconds=settings.requeue_after + 1)
    assert submission_flow.sweep(session_factory=factory, now=later).resent == [sid]
    assert queue_depth(settings)["cpu"] == 1


def test_a_rolled_back_transaction_publishes_nothing(env, monkeypatch):
    settings, factory, round_id = env
    published: list[int] = []
    monkeypatch.setattr(
        queue, "enqueue_verification", lambda **kw: published.append(kw["submission_id"])
    )
    with pytest.raises(RuntimeError), submission_flow.unit_of_work(factory) as session:
        _create(session, round_id)
        raise RuntimeError("the caller failed after storing")
    with session_scope(factory) as session:
        assert session.query(Submission).count() == 0
    assert published == []
    with submission_flow.unit_of_work(factory) as session:
        sid = _create(session, round_id, tag="2")
    assert published == [sid]  # once, after its commit
