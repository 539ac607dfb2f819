"""Helpers for the queue and worker tests: a round to submit to, solutions, submitting, waiting
(real worker processes: ``support.workers``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.flows import submission as submission_flow
from bot.services import submissions, sweeper
from puzzles.catalog import get_puzzle
from storage.db import session_scope
from storage.models import (
    OutboxMessage,
    PuzzleVersion,
    Round,
    RoundStatus,
    Submission,
    Verdict,
    utcnow,
)

T = TypeVar("T")

PUZZLE = "palindromes"
SMALL_VERIFY = '{"heldout_size": 200, "circuit_size": 100}'
"""Held-out sizes small enough for a shared 2-core machine (the real engine still runs)."""


def seed_round(factory: sessionmaker[Session], slug: str = PUZZLE) -> int:
    puzzle = get_puzzle(slug)
    now = utcnow()
    with session_scope(factory) as session:
        version = session.scalar(
            select(PuzzleVersion).where(
                PuzzleVersion.slug == slug, PuzzleVersion.version == puzzle.version
            )
        )
        if version is None:
            version = PuzzleVersion(
                slug=slug,
                version=puzzle.version,
                weights_sha256=puzzle.weights_sha256,
                title=puzzle.title,
            )
            session.add(version)
            session.flush()
        round_ = Round(
            puzzle_version_id=version.id,
            channel_id="C0ROUND",
            opens_at=now - timedelta(days=1),
            closes_at=now + timedelta(days=27),
            status=RoundStatus.OPEN,
        )
        session.add(round_)
        session.flush()
        return round_.id


class Gate:
    """A file the sandboxed ``predict`` of ``solution(gate=...)`` waits on while it exists.

    It lives under the interpreter's prefix, which the sandbox binds read-only (and nothing else
    of the host), so the test can hold a job inside its sandbox for as long as it needs (to kill
    its worker mid-job) and then let the retry through: no window to hit by timing.
    """

    def __init__(self) -> None:
        import sys
        import uuid

        root = Path(os.path.realpath(sys.prefix)) / ".circuitboard-test-gates"
        root.mkdir(exist_ok=True)
        self.path = root / uuid.uuid4().hex

    def close(self) -> None:
        self.path.touch()

    def open(self) -> None:
        self.path.unlink(missing_ok=True)


def solution(
    *, tag: str = "", sleep: float = 0.0, slug: str = PUZZLE, gate: Gate | None = None
) -> bytes:
    """The puzzle's reference solution; ``sleep`` makes ``predict`` slow and ``gate`` makes it
    wait while the gate is closed (inside the sandbox)."""
    source = (get_puzzle(slug).solution_path).read_bytes()
    if gate is not None:
        source += (
            b"\n\nimport os as _os, time as _time\n_gated_predict = predict\n\n\n"
            b"def predict(tokens):\n"
            b"    while _os.path.exists(" + repr(str(gate.path)).encode() + b"):\n"
            b"        _time.sleep(0.02)\n"
            b"    return _gated_predict(tokens)\n"
        )
    if sleep:
        source += (
            b"\n\nimport time as _time\n_fast_predict = predict\n\n\n"
            b"def predict(tokens):\n"
            b"    _time.sleep(" + repr(float(sleep)).encode() + b")\n"
            b"    return _fast_predict(tokens)\n"
        )
    return source + f"\n# {tag}\n".encode()


def submit(
    factory: sessionmaker[Session],
    *,
    round_id: int,
    user_id: str,
    content: bytes,
    filename: str = "solution.py",
) -> int:
    with submission_flow.unit_of_work(factory) as session:
        row = submissions.create_submission(
            session=session,
            round_id=round_id,
            user_id=user_id,
            filename=filename,
            content=content,
        )
        return row.id


def rows(factory: sessionmaker[Session], ids: list[int] | None = None) -> list[Submission]:
    with session_scope(factory) as session:
        query = select(Submission).order_by(Submission.id)
        if ids is not None:
            query = query.where(Submission.id.in_(ids))
        return list(session.scalars(query))


def verdicts_by_submission(factory: sessionmaker[Session]) -> dict[int, list[int]]:
    """submission id -> the attempt numbers of its verdicts."""
    with session_scope(factory) as session:
        found: dict[int, list[int]] = {}
        for verdict in session.scalars(select(Verdict).order_by(Verdict.attempt)):
            found.setdefault(verdict.submission_id, []).append(verdict.attempt)
        return found


def sweep(factory: sessionmaker[Session]) -> sweeper.SweepResult:
    return submission_flow.sweep(session_factory=factory)


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    factory: sessionmaker[Session] | None = None,
    sweep_every: float = 0.5,
    interval: float = 0.2,
) -> T:
    """Poll ``check`` until it returns something truthy; run the sweeper meanwhile if given a
    session factory (as the scheduler would)."""
    deadline = time.monotonic() + timeout
    next_sweep = time.monotonic()
    while True:
        if factory is not None and time.monotonic() >= next_sweep:
            sweep(factory)
            next_sweep = time.monotonic() + sweep_every
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def all_final(factory: sessionmaker[Session], ids: list[int]) -> list[Submission] | None:
    found = rows(factory, ids)
    if len(found) == len(ids) and all(
        row.status in ("verified", "failed", "rejected") for row in found
    ):
        return found
    return None


def outbox_keys(factory) -> set[str]:
    with session_scope(factory) as session:
        return set(session.scalars(select(OutboxMessage.idempotency_key)))
