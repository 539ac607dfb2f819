"""Soak: submissions flow through the system while its processes are killed with SIGKILL.

Processes (all real, all on the embedded SQLite database + broker):
- the bot's background side, ``circuitboard rounds scheduler`` with a Slack token: the cycle (the
  round's announcement), the outbox dispatcher (every post to the fake Slack server) and the lease
  sweeper. Killed (-9) and restarted every few seconds.
- a ``circuitboard worker`` verifying in the sandbox. Killed (-9, with its pool and sandbox) and
  restarted every few tens of seconds.
Submissions arrive throughout through the upload service (``bot.flows.upload.receive``, the path the
Slack listener and the console take) from several users. Afterwards: nothing lost (every
submission has exactly one final status, and exactly one final post in its DM thread), nothing
posted twice (no message appears twice at the fake Slack server; every outbox row was sent).

A second soak plays Slack against ``circuitboard bot --http`` killed -9 every second or two:
DM file shares are retried until acknowledged, and every acknowledged upload must be stored
(``CIRCUITBOARD_SOAK_UPLOADS``, default 200, about 40 s): the bot records each file before its
ack, and a restarted bot stores what its killed predecessor acknowledged but never stored.

``CIRCUITBOARD_SOAK_SUBMISSIONS`` sets the number of submissions (default 200, about 5 minutes on
the 2-core CI machine; a smaller number for a quick local run). ``CIRCUITBOARD_SOAK_SEED`` replays a
kill schedule.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from e2e_support import FINAL, VERIFICATION_SEED, wait_for
from sqlalchemy import func, select

from bot.flows import rounds as round_flows
from bot.flows import upload as upload_flow
from bot.services import rounds
from bot.settings import get_settings
from bot.worker.processes import LocalWorker, start_local_worker
from puzzles.catalog import get_puzzle
from storage.db import session_factory, session_scope, upgrade_database
from storage.models import OutboxMessage, OutboxStatus, Submission, Verdict, utcnow

PUZZLE = "palindromes"
CHANNEL = "CSOAK"
USERS = [f"USOAK{n}" for n in range(8)]
N_SUBMISSIONS = int(os.environ.get("CIRCUITBOARD_SOAK_SUBMISSIONS", "200"))
SEED = int(os.environ.get("CIRCUITBOARD_SOAK_SEED", str(random.randrange(1_000_000))))
BOT_KILL_EVERY = (2.0, 6.0)  # seconds between SIGKILLs of the bot process
WORKER_KILL_EVERY = (12.0, 25.0)
MIN_WORKER_KILLS = 3  # the kill phase goes on until then (or until everything is done)
SUBMIT_OVER_S = 60.0  # submissions are spread over this long, so kills find work in flight
# Small held-out and hard sets: the soak tests that nothing is lost or doubled under kills, not
# the verification itself (the hard set is mined per submission, since each has its own seed).
SOAK_VERIFY = (
    '{"heldout_size": 64, "circuit_size": 32, "timeout_s": 60, "hardset_pool": 2000, '
    '"hardset_size": 64}'
)


def _cheap_solution(n: int) -> bytes:
    """The reference ``predict`` alone (no circuit to ablate), tagged so each upload is unique."""
    source = get_puzzle(PUZZLE).solution_path.read_text()
    body = "\n".join(line for line in source.splitlines() if not line.startswith("CIRCUIT"))
    return f"{body}\n\n# soak submission {n}\n".encode()


class BotProcess:
    """``circuitboard rounds scheduler`` in its own process group; ``kill`` is kill -9."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from bot.cli import main; main()", "rounds", "scheduler"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def kill(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture
def soak_settings(tmp_path, monkeypatch, fake_slack):
    db = tmp_path / "data" / "circuitboard.db"
    env = {
        "CIRCUITBOARD_DATABASE_URL": f"sqlite:///{db}",
        "CIRCUITBOARD_BROKER_URL": f"sqla+sqlite:///{db}",
        "CIRCUITBOARD_SLACK_BOT_TOKEN": fake_slack.token,
        "CIRCUITBOARD_SLACK_API_URL": fake_slack.api_url,
        "CIRCUITBOARD_VERIFY_OVERRIDES": SOAK_VERIFY,
        "CIRCUITBOARD_VERIFICATION_SEED": VERIFICATION_SEED,
        "CIRCUITBOARD_DAILY_SUBMISSION_LIMIT": "10000",
        "CIRCUITBOARD_TASK_TIME_LIMIT": "120",
        "CIRCUITBOARD_LEASE_SECONDS": "6",
        "CIRCUITBOARD_REQUEUE_AFTER": "10",
        "CIRCUITBOARD_MAX_ATTEMPTS": "5",
        "CIRCUITBOARD_SCHEDULE_TICK_SECONDS": "1",
        "OMP_NUM_THREADS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    settings = get_settings()
    settings.ensure_data_dir()
    upgrade_database(settings.db_url)
    return settings


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_soak_kill_9_the_bot_and_the_worker_nothing_lost_nothing_twice(
    soak_settings, fake_slack, tmp_path
) -> None:
    settings = soak_settings
    rng = random.Random(SEED)
    print(f"soak: {N_SUBMISSIONS} submissions, seed {SEED} (CIRCUITBOARD_SOAK_SEED to replay)")
    factory = session_factory(settings.db_url)
    now = utcnow()
    with session_scope(factory) as session:
        round_id = rounds.plan(
            session=session,
            slug=PUZZLE,
            channel_id=CHANNEL,
            now=now,
            opens_at=now,
            closes_at=now + timedelta(days=30),
            seed_hints=False,
            settings=settings,
        ).id
    logs = tmp_path / "logs"
    logs.mkdir()
    bot = BotProcess(logs / "bot.log")
    workers: list[LocalWorker] = []

    def start_worker() -> None:
        workers.append(start_local_worker(log_path=logs / f"worker-{len(workers)}.log"))

    def statuses() -> Counter[str]:
        with session_scope(factory) as session:
            rows = session.execute(
                select(Submission.status, func.count()).group_by(Submission.status)
            ).all()
        return Counter(
            {str(status.value if hasattr(status, "value") else status): n for status, n in rows}
        )

    started = time.monotonic()
    bot_kills = worker_kills = 0
    try:
        bot.start()
        start_worker()

        def round_open() -> bool:
            with session_scope(factory) as session:
                return rounds.require(session=session, round_id=round_id).status == "open"

        wait_for(round_open, timeout=120, what="the bot to open the round")
        next_bot_kill = time.monotonic() + rng.uniform(*BOT_KILL_EVERY)
        next_worker_kill = time.monotonic() + rng.uniform(*WORKER_KILL_EVERY)
        phase_start = time.monotonic()
        submitted = 0
        # Phase 1: submissions arrive while both processes are killed at random.
        while True:
            due = N_SUBMISSIONS * (time.monotonic() - phase_start) / SUBMIT_OVER_S
            if submitted < min(N_SUBMISSIONS, due + 1):
                user = USERS[submitted % len(USERS)]
                content = _cheap_solution(submitted)
                outcome = upload_flow.receive(
                    session_factory=factory,
                    settings=settings,
                    user_id=user,
                    file={
                        "id": f"FSOAK{submitted:05d}",
                        "name": f"soak_{submitted}.py",
                        "size": len(content),
                        "url_private_download": f"{fake_slack.base_url}/files/{submitted}",
                    },
                    fetch=lambda _url, content=content: content,
                )
                assert outcome.error is None, outcome.error
                submitted += 1
            moment = time.monotonic()
            if moment >= next_bot_kill:
                bot.kill()
                bot_kills += 1
                bot.start()
                next_bot_kill = moment + rng.uniform(*BOT_KILL_EVERY)
            if moment >= next_worker_kill:
                workers[-1].kill()
                worker_kills += 1
                start_worker()
                next_worker_kill = moment + rng.uniform(*WORKER_KILL_EVERY)
            done = sum(n for status, n in statuses().items() if status in FINAL)
            if submitted == N_SUBMISSIONS and (
                worker_kills >= MIN_WORKER_KILLS or done == N_SUBMISSIONS
            ):
                break
            time.sleep(0.25)
        kill_phase = time.monotonic() - started

        # Phase 2: the survivors (one bot, one worker) must finish everything.
        def drained() -> bool:
            counts = statuses()
            if sum(counts[s] for s in FINAL) < N_SUBMISSIONS:
                return False
            with session_scope(factory) as session:
                waiting = session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status != OutboxStatus.SENT)
                )
            return waiting == 0

        wait_for(drained, timeout=1800, what="every submission final and every post sent", every=1)
        elapsed = time.monotonic() - started
    except BaseException:
        for path in sorted(logs.iterdir()):
            print(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        print("statuses:", dict(statuses()))
        raise
    finally:
        bot.stop()
        for worker in workers:
            worker.stop(timeout=10)
    print(
        f"soak: {N_SUBMISSIONS} submissions in {elapsed:.0f} s ({kill_phase:.0f} s with kills): "
        f"{bot_kills} bot kills, {worker_kills} worker kills, statuses {dict(statuses())}"
    )

    # Nothing lost: every submission has one final status, and its verdict at most once per run.
    with session_scope(factory) as session:
        rows = list(session.scalars(select(Submission).order_by(Submission.id)))
        verdicts = Counter(session.scalars(select(Verdict.submission_id)))
        outbox_rows = list(session.scalars(select(OutboxMessage)))
    assert len(rows) == N_SUBMISSIONS
    assert [r.id for r in rows if r.status not in FINAL] == []
    for row in rows:
        expected = 1 if row.status == "verified" else 0
        assert verdicts[row.id] == expected, (row.id, row.status, row.message, verdicts[row.id])
    assert [r.idempotency_key for r in outbox_rows if r.status != OutboxStatus.SENT] == []

    # Every post reached Slack: each submission's final word (verdict or failure) and the
    # round's announcement at least once.
    posts = fake_slack.calls_to("chat.postMessage")
    texts = {(c.args.get("channel"), c.args.get("thread_ts"), c.args.get("text")) for c in posts}
    for row in rows:
        finals = {
            (channel, thread, text)
            for channel, thread, text in texts
            if str(text).startswith(f"Submission #{row.id} ")  # the verdict
            or (
                str(text).startswith(f"Submission #{row.id}: ")
                and thread
                and row.status != "verified"
            )
        }
        assert len(finals) == 1, (row.id, row.status, finals)
    announcements = {t for t in texts if t[0] == CHANNEL and str(t[2]).startswith("New puzzle")}
    assert len(announcements) == 1

    # Nothing posted twice.
    seen = Counter(
        (c.args.get("channel"), c.args.get("thread_ts"), c.args.get("text")) for c in posts
    )
    twice = sorted((key for key, n in seen.items() if n > 1), key=str)
    assert twice == [], twice
    # A plot upload is never completed twice either (the outbox reads back a crashed attempt).
    uploads_done = fake_slack.calls_to("files.completeUploadExternal")
    assert len(uploads_done) == sum(1 for r in outbox_rows if r.method == "files_upload_v2")
    resent = sorted(r.idempotency_key for r in outbox_rows if r.attempts > 1)
    reads = sum(
        len(fake_slack.calls_to(m)) for m in ("conversations.history", "conversations.replies")
    )
    print(f"soak: {len(posts)} posts, no duplicates; {reads} read-backs; rows retried: {resent}")


INGEST_UPLOADS = int(os.environ.get("CIRCUITBOARD_SOAK_UPLOADS", "200"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_uploads_acknowledged_by_a_bot_killed_with_9_are_not_lost(
    tmp_path, monkeypatch, fake_slack
) -> None:
    """DM file shares to ``circuitboard bot --http`` while it is killed -9 every second or two.

    The test plays Slack: a delivery that got no HTTP 200 is retried (``X-Slack-Retry-Num``), one
    that got a 200 is never sent again. Every upload must become exactly one submission.
    """
    import json
    import socket

    import httpx
    from e2e_support import SIGNING_SECRET, SlackRequests

    db = tmp_path / "data" / "circuitboard.db"
    env = {
        "CIRCUITBOARD_DATABASE_URL": f"sqlite:///{db}",
        "CIRCUITBOARD_BROKER_URL": f"sqla+sqlite:///{db}",
        "CIRCUITBOARD_SLACK_BOT_TOKEN": fake_slack.token,
        "CIRCUITBOARD_SLACK_API_URL": fake_slack.api_url,
        "CIRCUITBOARD_SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "CIRCUITBOARD_DAILY_SUBMISSION_LIMIT": "100000",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    settings = get_settings()
    settings.ensure_data_dir()
    upgrade_database(settings.db_url)
    factory = session_factory(settings.db_url)
    now = utcnow()
    with session_scope(factory) as session:
        round_ = rounds.plan(
            session=session,
            slug=PUZZLE,
            channel_id=CHANNEL,
            now=now,
            opens_at=now,
            closes_at=now + timedelta(days=30),
            seed_hints=False,
            settings=settings,
        )
        round_flows.announce_round(session=session, round_id=round_.id, now=now)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [sys.executable, "-c", "from bot.cli import main; main()", "bot", "--http"]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    rng = random.Random(SEED)
    kills = 0
    with httpx.Client(timeout=10) as http:
        slack = SlackRequests(
            url=f"http://127.0.0.1:{port}/slack/events", fake=fake_slack, http=http
        )

        def start() -> subprocess.Popen[bytes]:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

            def healthy() -> bool:
                try:
                    return http.get(f"http://127.0.0.1:{port}/healthz").text == "ok"
                except httpx.TransportError:
                    return False

            wait_for(healthy, timeout=60, what="the bot to serve", every=0.05)
            return process

        process = start()
        try:
            next_kill = time.monotonic() + rng.uniform(0.5, 2.0)
            for n in range(INGEST_UPLOADS):
                user = USERS[n % len(USERS)]
                content = _cheap_solution(n)
                url = fake_slack.add_file(f"FING{n:05d}", f"up_{n}.py", content)
                event = {
                    "type": "message",
                    "subtype": "file_share",
                    "channel": "D" + user[1:],
                    "channel_type": "im",
                    "user": user,
                    "ts": f"1700000000.{n:06d}",
                    "text": "",
                    "files": [
                        {
                            "id": f"FING{n:05d}",
                            "name": f"up_{n}.py",
                            "size": len(content),
                            "url_private_download": url,
                            "filetype": "python",
                        }
                    ],
                }
                body = {
                    "token": "legacy",
                    "team_id": "T0FAKE",
                    "api_app_id": "A0FAKE",
                    "type": "event_callback",
                    "event_id": f"EvING{n:06d}",
                    "event": event,
                }
                for retry in range(10):  # as Slack does, until a delivery gets its 200
                    body["event_time"] = int(time.time())
                    headers = {"X-Slack-Retry-Num": str(retry)} if retry else {}
                    try:
                        response = slack.post(json.dumps(body), "application/json", headers)
                        if response.status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if process.poll() is not None:
                        process = start()
                else:
                    raise AssertionError(f"upload {n} was never acknowledged")
                if time.monotonic() >= next_kill:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    kills += 1
                    process = start()
                    next_kill = time.monotonic() + rng.uniform(0.5, 2.0)

            def stored() -> int:
                with session_scope(factory) as session:
                    return session.scalar(select(func.count()).select_from(Submission)) or 0

            with contextlib.suppress(AssertionError):
                wait_for(lambda: stored() >= INGEST_UPLOADS, timeout=120, what="every upload")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
    count = stored()
    print(f"ingest soak: {INGEST_UPLOADS} uploads acknowledged, {kills} kills, {count} stored")
    assert count == INGEST_UPLOADS, f"{INGEST_UPLOADS - count} acknowledged uploads lost"
