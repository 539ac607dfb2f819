"""The APScheduler runtime in-process: fixed job ids in the database job store, re-runs that post
nothing new, and one scheduler per database (a second instance stands by and says so)."""

from __future__ import annotations

import logging
import os
import pickle
import time
from datetime import timedelta

import pytest
from sqlalchemy import text
from support.scheduler import CHANNEL, make_settings

from bot import scheduler as schedule
from bot.scheduler import SchedulerLock, SchedulerService
from bot.services import hints, rounds
from storage.db import make_engine, session_factory, session_scope
from storage.models import OutboxMessage, utcnow


def _wait(predicate, *, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _plan_soon(factory, settings, *, opens_in: float, hint_in: float | None = None) -> int:
    now = utcnow()
    with session_scope(factory) as s:
        round_ = rounds.plan(
            session=s,
            slug="alpha",
            channel_id=CHANNEL,
            now=now,
            opens_at=now + timedelta(seconds=opens_in),
            closes_at=now + timedelta(hours=1),
            seed_hints=False,
            settings=settings,
        )
        if hint_in is not None:
            hints.add(
                session=s,
                round_id=round_.id,
                text="Soon.",
                release_at=now + timedelta(seconds=hint_in),
                now=now,
                settings=settings,
            )
        return round_.id


def _keys(factory) -> list[str]:
    with session_scope(factory) as s:
        return [m.idempotency_key for m in s.query(OutboxMessage).order_by(OutboxMessage.id)]


def test_lock_admits_one_holder(any_url) -> None:
    first, second = SchedulerLock(any_url), SchedulerLock(any_url)
    assert first.acquire()
    try:
        assert not second.acquire()
        holder = second.holder()
        if any_url.startswith("sqlite"):
            assert f"pid {os.getpid()}" in holder and ".scheduler.lock" in holder
        else:
            assert "PostgreSQL backend pid" in holder
    finally:
        first.release()
    assert second.acquire()
    second.release()


def test_scheduler_posts_through_the_fake_slack_and_reruns_post_nothing_new(
    url, factory, slack_server, client
) -> None:
    settings = make_settings(url, schedule_tick_seconds=0.1)
    round_id = _plan_soon(factory, settings, opens_in=0.3, hint_in=0.6)
    service = schedule.start_scheduler(settings=settings, client=client, session_factory=factory)
    try:
        assert service.is_running, service.message
        slack_server.wait_for("chat.postMessage", count=2, timeout=120)
    finally:
        service.stop()
    engine = make_engine(url)
    with engine.connect() as conn:
        ids = set(conn.scalars(text("SELECT id FROM apscheduler_jobs")))
    engine.dispose()
    assert {schedule.CYCLE_JOB_ID, schedule.OUTBOX_JOB_ID} <= ids

    # APScheduler can re-run a job after a crash (it saves the next run time after submitting
    # the job): restart with the stored jobs, and run the job bodies again by hand too.
    again = schedule.start_scheduler(settings=settings, client=client, session_factory=factory)
    try:
        assert again.is_running
        schedule.cycle_job()
        schedule.outbox_job()
        again.run_now()
        time.sleep(0.5)
    finally:
        again.stop()
    texts = [c.args["text"] for c in slack_server.calls_to("chat.postMessage")]
    assert len(texts) == 2
    assert texts[0].startswith("New puzzle: Alpha palindromes")
    assert texts[1] == "Hint 1 for Alpha palindromes: Soon."
    assert _keys(factory) == [f"round:{round_id}:announce", "hint:1:release"]


def test_a_second_instance_runs_no_jobs_says_so_and_takes_over_later(
    any_url, catalog, caplog
) -> None:
    settings = make_settings(any_url, schedule_tick_seconds=0.05)
    engine = make_engine(any_url)
    factory = session_factory(engine)
    other = SchedulerLock(any_url)  # "another bot instance"
    assert other.acquire()
    service = None
    try:
        _plan_soon(factory, settings, opens_in=0)
        with caplog.at_level(logging.WARNING, logger="bot.scheduler.service"):
            service = SchedulerService(
                settings=settings, session_factory=factory, standby_retry_s=0.1
            ).start()
        assert not service.is_running
        assert "already running" in service.message and "runs no scheduled jobs" in service.message
        assert "already running" in caplog.text
        time.sleep(0.5)
        assert _keys(factory) == []  # the standby ran nothing
        other.release()
        _wait(lambda: service.is_running, what="the standby to take over")
        _wait(lambda: _keys(factory) == ["round:1:announce"], what="the announcement")
    finally:
        if service is not None:
            service.stop()
        other.release()
        engine.dispose()


def test_one_scheduler_per_process(url, factory) -> None:
    settings = make_settings(url, schedule_tick_seconds=5)
    service = schedule.start_scheduler(settings=settings, session_factory=factory)
    try:
        assert service.is_running
        # An in-memory database needs no lock: only the one-per-process rule stops it.
        second = SchedulerService(settings=make_settings("sqlite://"), session_factory=factory)
        with pytest.raises(RuntimeError, match="already running in this process"):
            second.start()
    finally:
        service.stop()


def test_losing_the_postgres_lock_stops_jobs_here_until_it_is_taken_again(
    postgres_url, catalog
) -> None:
    from storage.db import upgrade_database

    upgrade_database(postgres_url)
    settings = make_settings(postgres_url, schedule_tick_seconds=0.05)
    engine = make_engine(postgres_url)
    factory = session_factory(engine)
    service = SchedulerService(settings=settings, session_factory=factory, standby_retry_s=0.1)
    try:
        service.start()
        assert service.is_running
        backend = service.lock._connection.scalar(text("SELECT pg_backend_pid()"))
        with engine.connect() as conn:  # the database drops the lock's connection
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend})
        _wait(lambda: service.lock_losses == 1, what="the lock loss")
        _wait(lambda: service.is_running, what="the lock to be taken again")
        _plan_soon(factory, settings, opens_in=0)
        _wait(lambda: _keys(factory) == ["round:1:announce"], what="the announcement")
    finally:
        service.stop()
        engine.dispose()


def test_jobs_stored_by_an_older_version_are_replaced_without_an_error(
    url, factory, caplog
) -> None:
    """A job store written before ``bot.schedule`` became ``bot.scheduler`` names job bodies that
    no longer exist; the first start replaces them instead of logging "Unable to restore job"."""
    settings = make_settings(url, schedule_tick_seconds=60)
    service = schedule.start_scheduler(settings=settings, session_factory=factory)
    service.stop()
    engine = factory.kw["bind"]
    with engine.begin() as connection:
        rows = connection.execute(text("SELECT id, job_state FROM apscheduler_jobs")).all()
        assert {job_id for job_id, _ in rows} >= {schedule.CYCLE_JOB_ID}
        for job_id, blob in rows:
            state = pickle.loads(blob)
            state["func"] = state["func"].replace("bot.scheduler.jobs:", "bot.schedule:")
            connection.execute(
                text("UPDATE apscheduler_jobs SET job_state = :s WHERE id = :i"),
                {"s": pickle.dumps(state), "i": job_id},
            )
    with caplog.at_level(logging.WARNING):
        service = schedule.start_scheduler(settings=settings, session_factory=factory)
        try:
            refs = {job.id: job.func_ref for job in service.scheduler.get_jobs()}
        finally:
            service.stop()
    assert refs[schedule.CYCLE_JOB_ID] == "bot.scheduler.jobs:cycle_job"
    assert "Unable to restore job" not in caplog.text
