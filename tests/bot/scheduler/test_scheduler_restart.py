"""Restarts of a real scheduler process against a SQLite file: stopped between scheduling and
release, and killed with SIGKILL again and again while it releases. Afterwards every post reaches
the fake Slack server exactly once: none lost, none duplicated.

The scheduler processes are forked from a warm parent (``scheduler_process.py``) so a restart
costs milliseconds; the outbox is then flushed to the fake Slack server from the test.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from support.scheduler import ADMIN, CHANNEL, make_settings

from bot import outbox
from bot.posts import hints as hint_posts
from bot.services import hints, rounds
from storage.db import make_engine, session_factory, session_scope
from storage.models import Hint, HintStatus, OutboxMessage, Round, RoundStatus, utcnow

REPO = Path(__file__).resolve().parents[3]
FORK_SERVER = Path(__file__).with_name("scheduler_process.py")


class SchedulerProcesses:
    """Starts scheduler processes on demand; each is a real OS process the test can kill."""

    def __init__(self, url: str, catalog: Path, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCUITBOARD_")}
        env.update(
            CIRCUITBOARD_DATABASE_URL=url,
            CIRCUITBOARD_DATA_DIR=str(data_dir),
            CIRCUITBOARD_CATALOG_PATH=str(catalog),
            CIRCUITBOARD_TIMEZONE="Europe/Berlin",
            CIRCUITBOARD_ADMINS=ADMIN,
            CIRCUITBOARD_SCHEDULE_TICK_SECONDS="0.05",
            PYTHONPATH=str(REPO),
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-u", str(FORK_SERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.pauses: queue.Queue[tuple[int, int]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.children: set[int] = set()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "paused":
                pid, _, hint_id = rest.partition(" ")
                self.pauses.put((int(pid), int(hint_id)))
            else:
                self.lines.put(f"{kind} {rest}")

    def start(self, *, pause_after: int | None = None, timeout: float = 60.0) -> tuple[int, str]:
        """Fork a scheduler; returns its pid and its startup message once it is up.

        With ``pause_after=K`` the child commits K hint releases and then stops inside the next
        one (see ``scheduler_process.py``); ``wait_paused`` returns when it has.
        """
        assert self.proc.stdin is not None
        command = "start" if pause_after is None else f"start-paused {pause_after}"
        self.proc.stdin.write(f"{command}\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        pid = None
        ready: dict[int, str] = {}
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("the scheduler process did not start")
            line = self.lines.get(timeout=left)
            kind, _, rest = line.partition(" ")
            if kind == "started":
                pid = int(rest)
                self.children.add(pid)
            elif kind == "ready":
                child, _, message = rest.partition(" ")
                ready[int(child)] = message
            if pid is not None and pid in ready:
                return pid, ready[pid]

    def wait_paused(self, pid: int, *, timeout: float = 60.0) -> int:
        """Block until child ``pid`` stopped mid-release; returns the hint it was releasing."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"scheduler {pid} never started a hint release")
            paused, hint_id = self.pauses.get(timeout=left)
            if paused == pid:
                return hint_id

    def stop(self, pid: int, sig: int = signal.SIGTERM, *, timeout: float = 20.0) -> None:
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"process {pid} did not exit")
            time.sleep(0.005)
        self.children.discard(pid)

    def close(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError, AssertionError):
                self.stop(pid, signal.SIGKILL)
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=10)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()


@pytest.fixture
def processes(url, catalog, tmp_path):
    procs = SchedulerProcesses(url, catalog, tmp_path / "proc-data")
    yield procs
    procs.close()


@pytest.fixture
def db(url):
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


def _wait(predicate, *, timeout: float = 30.0, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _keys(db) -> list[str]:
    with session_scope(db) as s:
        return [m.idempotency_key for m in s.query(OutboxMessage).order_by(OutboxMessage.id)]


def _flush_to_slack(db, client) -> None:
    while outbox.dispatch_pending(session_factory=db, client=client, per_channel_interval=0):
        pass


def test_stopped_between_scheduling_and_release_posts_once_after_restart(
    processes, db, url, client, slack_server
) -> None:
    settings = make_settings(url)
    pid, message = processes.start()
    assert message.startswith("scheduler running")
    now = utcnow()
    opens = now + timedelta(seconds=3)
    with session_scope(db) as s:  # planned while the scheduler runs
        round_id = rounds.plan(
            session=s,
            slug="alpha",
            channel_id=CHANNEL,
            now=now,
            opens_at=opens,
            closes_at=now + timedelta(hours=1),
            seed_hints=False,
            settings=settings,
        ).id
        hints.add(
            session=s,
            round_id=round_id,
            text="While you were out.",
            release_at=opens + timedelta(seconds=0.2),
            now=now,
            settings=settings,
        )
    processes.stop(pid, signal.SIGTERM)
    assert _keys(db) == []  # stopped before anything was due
    time.sleep(max(0.0, (opens - utcnow()).total_seconds() + 0.5))

    pid, _ = processes.start()
    _wait(lambda: len(_keys(db)) == 2, what="the announcement and the hint")
    processes.stop(pid, signal.SIGTERM)

    _flush_to_slack(db, client)
    texts = [c.args["text"] for c in slack_server.calls_to("chat.postMessage")]
    assert len(texts) == 2
    assert texts[0].startswith("New puzzle: Alpha palindromes")
    assert texts[1] == "Hint 1 for Alpha palindromes: While you were out."


def test_a_second_scheduler_process_runs_nothing_and_says_who_does(processes) -> None:
    first, message = processes.start()
    assert message.startswith("scheduler running")
    second, message = processes.start()
    assert "already running" in message and f"pid {first}" in message
    assert "runs no scheduled jobs" in message


def _state(db) -> tuple[int, int, list[RoundStatus]]:
    with session_scope(db) as s:
        released = s.query(Hint).filter(Hint.status == HintStatus.RELEASED).count()
        missed = s.query(Hint).filter(Hint.status == HintStatus.MISSED).count()
        statuses = [r.status for r in s.query(Round).order_by(Round.id)]
    return released, missed, statuses


def test_kill_9_during_releases_loses_and_duplicates_nothing(
    processes, db, url, client, slack_server
) -> None:
    settings = make_settings(url)
    hint_count, kills_wanted, span, bursts = 30, 20, 8.0, 6
    burst_size = hint_count // bursts
    pid, _ = processes.start(pause_after=0)  # running while the month is planned
    now = utcnow()
    opens = now + timedelta(seconds=0.3)
    closes = opens + timedelta(seconds=span)
    with session_scope(db) as s:
        first = rounds.plan(
            session=s,
            slug="alpha",
            channel_id=CHANNEL,
            now=now,
            opens_at=opens,
            closes_at=closes,
            seed_hints=False,
            settings=settings,
        )
        # Bursts of hints due at once, so that a kill often lands in the middle of releasing.
        for n in range(hint_count):
            burst = n // burst_size
            hints.add(
                session=s,
                round_id=first.id,
                text=f"hint number {n}",
                release_at=opens + timedelta(seconds=0.1 + burst * span / bursts),
                now=now,
                settings=settings,
            )
        second = rounds.plan(
            session=s,
            slug="beta",
            channel_id=CHANNEL,
            now=now,
            opens_at=closes,
            closes_at=closes + timedelta(hours=1),
            seed_hints=False,
            settings=settings,
        )
        first_id, second_id = first.id, second.id

    def done() -> bool:
        released, _, statuses = _state(db)
        return released == hint_count and statuses == [
            RoundStatus.SOLUTIONS_POSTED,
            RoundStatus.OPEN,
        ]

    def hint_state(hint_id: int) -> tuple[HintStatus, bool]:
        with session_scope(db) as s:
            hint = s.get(Hint, hint_id)
            queued = (
                s.query(OutboxMessage)
                .filter(OutboxMessage.idempotency_key == hint_posts.release_key(hint_id))
                .count()
            )
            return hint.status, queued > 0

    def scheduled() -> int:
        with session_scope(db) as s:
            return s.query(Hint).filter(Hint.status == HintStatus.SCHEDULED).count()

    # Every child may commit at most `pause_after` (< the hints left) releases before it stops
    # inside the next one, so the loop never runs out of releases to interrupt. Even kills wait
    # for that stop: they land mid-release by construction. Odd kills come at a random moment
    # (between transactions, while idle, inside one: wherever it falls).
    rng = random.Random(8)
    kills = mid_release = 0
    while kills < kills_wanted:
        if kills % 2 == 0:
            hint_id = processes.wait_paused(pid, timeout=span + 60)
            processes.stop(pid, signal.SIGKILL)
            # The release was written but not committed when the process died: nothing of it.
            assert hint_state(hint_id) == (HintStatus.SCHEDULED, False)
            mid_release += 1
        else:
            time.sleep(rng.uniform(0.0, 0.3))
            processes.stop(pid, signal.SIGKILL)
        kills += 1
        if kills < kills_wanted:
            pause_after = min(rng.choice([0, 1, 2]), scheduled() - 1)
            assert pause_after >= 0, "a child released more hints than it was allowed"
            pid, _ = processes.start(pause_after=pause_after)
    pid, _ = processes.start()  # the last one runs unhindered and finishes the month
    _wait(done, timeout=span + 60, what="the restarted scheduler to finish the month")
    processes.stop(pid, signal.SIGTERM)
    print(f"{kills} kills, {mid_release} of them inside a hint release")
    assert mid_release == kills_wanted // 2

    released, missed, _ = _state(db)
    assert (released, missed) == (hint_count, 0)
    _flush_to_slack(db, client)
    posts = [c.args["text"] for c in slack_server.calls_to("chat.postMessage")]
    counts = Counter(posts)
    assert [p for p, n in counts.items() if n > 1] == []  # 0 duplicated
    expected = [f"Hint {n + 1} for Alpha palindromes: hint number {n}" for n in range(hint_count)]
    assert [p for p in posts if p.startswith("Hint")] == expected  # 0 lost, in order
    heads = [p.split(":")[0].split(".")[0] for p in posts if not p.startswith("Hint")]
    assert heads == ["New puzzle", "Solutions for Alpha palindromes", "New puzzle"]
    assert posts[0].startswith("New puzzle: Alpha") and posts[-1].startswith("New puzzle: Beta")
    assert len(posts) == hint_count + 3
    assert set(_keys(db)) == {
        f"round:{first_id}:announce",
        f"round:{first_id}:solutions",
        f"round:{second_id}:announce",
        *(f"hint:{n}:release" for n in range(1, hint_count + 1)),
    }
