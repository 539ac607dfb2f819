"""A small world of rounds, users, submissions and verdicts for the leaderboard/credit/export tests.

Rows are written through the real schema (created by the real migrations); nothing is mocked.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot import outbox
from storage.db import make_engine, session_factory, upgrade_database
from storage.models import (
    Blob,
    PuzzleVersion,
    Round,
    RoundStatus,
    SlackUser,
    Submission,
    SubmissionStatus,
    Verdict,
    utcnow,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class World:
    def __init__(self, url: str) -> None:
        upgrade_database(url)
        self.engine: Engine = make_engine(url)
        self.factory: sessionmaker[Session] = session_factory(self.engine)
        self.session: Session = self.factory()
        self._blobs = 0

    def close(self) -> None:
        self.session.close()
        self.engine.dispose()

    def puzzle(self, slug: str = "fixture_puzzle", title: str = "Fixture Puzzle") -> PuzzleVersion:
        self._puzzles = getattr(self, "_puzzles", 0) + 1
        pv = PuzzleVersion(slug=slug, version=self._puzzles, weights_sha256="0" * 64, title=title)
        self.session.add(pv)
        self.session.flush()
        return pv

    def round(
        self,
        *,
        month: int = 0,
        status: RoundStatus = RoundStatus.OPEN,
        puzzle: PuzzleVersion | None = None,
        channel: str = "CROUND",
    ) -> Round:
        opens = T0 + timedelta(days=30 * month)
        r = Round(
            puzzle_version_id=(puzzle or self.puzzle()).id,
            channel_id=channel,
            opens_at=opens,
            closes_at=opens + timedelta(days=30),
            status=status,
        )
        self.session.add(r)
        self.session.flush()
        return r

    def user(self, user_id: str, name: str | None = None) -> str:
        if self.session.get(SlackUser, user_id) is None:
            self.session.add(SlackUser(id=user_id, display_name=name or user_id.lower()))
            self.session.flush()
        return user_id

    def submit(
        self,
        round_: Round,
        user_id: str,
        *,
        hours: float = 1,
        verdicts: list[tuple] = (),
        status: SubmissionStatus | None = None,
        writeup_url: str | None = None,
    ) -> Submission:
        """A submission ``hours`` after the round opened with verdicts (checks, passed, public,
        private[, causal]): see :meth:`verdict`."""
        self.user(user_id)
        self._blobs += 1
        sha = hashlib.sha256(str(self._blobs).encode()).hexdigest()
        self.session.add(Blob(sha256=sha, size=1, content=b"x"))
        sub = Submission(
            round_id=round_.id,
            user_id=user_id,
            filename="solution.py",
            blob_sha256=sha,
            status=status or (SubmissionStatus.VERIFIED if verdicts else SubmissionStatus.QUEUED),
            attempts=len(verdicts),
            writeup_url=writeup_url,
            created_at=round_.opens_at + timedelta(hours=hours),
        )
        self.session.add(sub)
        self.session.flush()
        for verdict in verdicts:
            self.verdict(sub, *verdict)
        return sub

    def verdict(
        self,
        submission: Submission,
        checks: int,
        passed: bool,
        public: float | None,
        private: float | None = None,
        causal: float | None = 0.9,
    ) -> Verdict:
        """``causal``: the verdict's causal score (a format-v2 hypothesis); None for a file that
        declares no variables (such a submission cannot be credited best solution)."""
        attempt = 1 + max((v.attempt for v in submission.verdicts), default=0)
        v = Verdict(
            submission_id=submission.id,
            attempt=attempt,
            passed=passed,
            checks_passed=checks,
            public_score=public,
            private_score=private,
            scores={} if causal is None else {"scores": {"causal": causal}},
            created_at=submission.created_at + timedelta(minutes=attempt),
        )
        self.session.add(v)
        self.session.flush()
        self.session.expire(submission, ["verdicts"])
        return v


def drain_posts(world: World, fake_slack) -> None:
    """Send what the outbox holds to the fake Slack (a few passes: a post may queue its pin)."""
    client = WebClient(token=fake_slack.token, base_url=fake_slack.api_url)
    for _ in range(4):
        outbox.dispatch_pending(
            session_factory=world.factory,
            client=client,
            per_channel_interval=0,
            now=utcnow() + timedelta(seconds=1),
        )


def shown_text(call) -> str:
    """Everything a Slack call showed: its blocks and its fallback text."""
    return json.dumps(call.args.get("blocks"), ensure_ascii=False) + str(call.args.get("text"))
