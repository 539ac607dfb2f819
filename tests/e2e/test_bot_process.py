"""``circuitboard bot --http`` as deployed (compose runs ``circuitboard bot``): one process serves
Slack's signed requests and runs the monthly cycle, so a round that falls due is announced without
any other process running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from e2e_support import SIGNING_SECRET, SlackRequests, wait_for

from bot.services import rounds
from bot.settings import get_settings
from storage.db import session_factory, session_scope, upgrade_database
from storage.models import utcnow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(180)
def test_the_bot_process_announces_a_due_round_and_answers_commands(
    tmp_path, monkeypatch, fake_slack
) -> None:
    db = tmp_path / "data" / "circuitboard.db"
    env = {
        "CIRCUITBOARD_DATABASE_URL": f"sqlite:///{db}",
        "CIRCUITBOARD_SLACK_BOT_TOKEN": fake_slack.token,
        "CIRCUITBOARD_SLACK_API_URL": fake_slack.api_url,
        "CIRCUITBOARD_SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "CIRCUITBOARD_SCHEDULE_TICK_SECONDS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    settings = get_settings()
    settings.ensure_data_dir()
    upgrade_database(settings.db_url)
    now = utcnow()
    with session_scope(session_factory(settings.db_url)) as session:
        rounds.plan(
            session=session,
            slug="palindromes",
            channel_id="CBOT",
            now=now,
            opens_at=now + timedelta(seconds=2),
            closes_at=now + timedelta(days=30),
            settings=settings,
        )
    port = _free_port()
    log = (tmp_path / "bot.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from bot.cli import main; main()", "bot", "--http"]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        (announcement,) = fake_slack.wait_for(
            "chat.postMessage", lambda c: c.args.get("channel") == "CBOT", timeout=90
        )
        assert announcement.args["text"].startswith("New puzzle: ")
        with httpx.Client(timeout=30) as http:

            def healthy() -> bool:
                try:
                    return http.get(f"http://127.0.0.1:{port}/healthz").text == "ok"
                except httpx.TransportError:
                    return False

            wait_for(healthy, timeout=60, what="the bot's HTTP server")
            slack = SlackRequests(
                url=f"http://127.0.0.1:{port}/slack/events", fake=fake_slack, http=http
            )
            answer = slack.command_answer("hints", user="U1")
        assert answer.get("response_type") == "ephemeral"
        wait_for(lambda: process.poll() is None, timeout=1, what="the bot to keep running")
    except BaseException:
        log.flush()
        print((tmp_path / "bot.log").read_text(errors="replace")[-3000:])
        raise
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        log.close()
