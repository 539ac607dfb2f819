"""One verification run: claim the row, run the engine under a lease, record one verdict.

A task carries only a submission id. The run claims the row with a lease, renews it while the
engine runs, writes the stages as they happen, and records one verdict for its attempt, all
conditional on still holding the lease; the row (not the broker) decides whether a delivery does
anything. Each step is a ``bot.flows.submission`` step, whose posts commit with it; the worker
sends them at once (``send_posts``).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.orm import Session, sessionmaker

from bot.flows import submission as submission_flow
from bot.services import submissions
from bot.services.leases import Outcome
from bot.settings import Settings, get_settings
from bot.worker import runtime
from bot.worker.lease import INTERNAL_ERROR, LeaseKeeper, time_limit_message
from bot.worker.seeds import hard_set_seed, secret_seed
from bot.worker.sender import send_posts
from storage.db import session_scope
from storage.models import Submission

log = logging.getLogger(__name__)

TIMING_ONLY_STAGES = frozenset({"sandbox ready"})
"""Engine stages recorded in the timings but not shown to the user (no status edit)."""

SANDBOX_UNAVAILABLE = (
    "Verification is unavailable on this worker (its sandbox cannot start). "
    "Admins have been told; this run does not count toward your daily limit."
)


def outcome_of(verdict: Any) -> Outcome:
    data = verdict.to_json()
    data.pop("report_md", None)
    data.pop("plot_png", None)
    scores = verdict.scores or {}
    primary = scores.get("replication", scores.get("circuit"))
    replication = verdict.checks.get("replication")
    details = replication.details if replication is not None else {}
    # Leaderboards rank by the documented quality score (puzzles/verify/quality.py), split like
    # the held-out set; verdicts from before it existed fall back to raw agreement.
    public = scores.get("quality_public", details.get("agreement_public", primary))
    private = scores.get("quality_private", details.get("agreement_private", primary))
    return Outcome(
        passed=bool(verdict.passed),
        checks_passed=sum(1 for check in verdict.checks.values() if check.passed),
        scores=data,
        report_md=verdict.report_md or "",
        plot_png=verdict.plot_png,
        runtime_s=verdict.runtime_s,
        device=verdict.device,
        engine_version=verdict.engine_version,
        # The engine splits the secret held-out set into a public and a private half; the
        # leaderboard hides the private column while the round is open.
        public_score=float(public) if public is not None else None,
        private_score=float(private) if private is not None else None,
        error=verdict.error,
    )


@dataclass(frozen=True)
class _Job:
    """What the engine needs of the row, read in one short transaction."""

    source: bytes
    filename: str
    slug: str
    round_id: int
    salt: str


@dataclass
class _Run:
    """One attempt this worker holds the lease for."""

    factory: sessionmaker[Session]
    settings: Settings
    submission_id: int
    owner: str
    attempt: int

    def fail(self, message: str) -> str:
        if submission_flow.fail_run(
            session_factory=self.factory,
            submission_id=self.submission_id,
            owner=self.owner,
            attempt=self.attempt,
            message=message,
            settings=self.settings,
        ):
            send_posts(self.settings)
        return "failed"

    def progress(self, stage: str) -> None:
        """The engine's progress callback: informative, so a busy database never fails the job."""
        try:
            changed = submission_flow.record_stage(
                session_factory=self.factory,
                submission_id=self.submission_id,
                owner=self.owner,
                attempt=self.attempt,
                stage=stage,
                shown=stage not in TIMING_ONLY_STAGES,
            )
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            log.warning("could not record stage %r of %s", stage, self.submission_id, exc_info=True)
            return
        if changed:
            send_posts(self.settings)

    def load(self) -> _Job:
        with session_scope(self.factory) as session:
            row = session.get(Submission, self.submission_id)
            assert row is not None
            return _Job(
                source=submissions.read_content(session=session, submission=row),
                filename=row.filename,
                slug=row.round.puzzle_version.slug,
                round_id=row.round_id,
                salt=f"round:{row.round_id}:submission:{row.id}",
            )

    def verify(self, keeper: LeaseKeeper) -> str:
        """Run the engine and record what it found (unless the lease was lost meanwhile)."""
        from puzzles.verify import verify_submission

        job = self.load()
        puzzle = runtime.puzzle(job.slug, self.settings)
        verdict = verify_submission(
            job.source,
            job.filename,
            puzzle,
            seed=secret_seed(self.settings, job.slug, salt=job.salt),
            hard_seed=hard_set_seed(self.settings, job.slug, job.round_id),
            device=runtime.worker_device(),
            sandbox=not self.settings.unsafe_no_sandbox,
            progress=self.progress,
            pool=runtime.sandbox_pool(puzzle, self.settings),
        )
        keeper.stop()  # recording needs the lease held, not unexpired
        if keeper.timed_out.is_set() or keeper.lost.is_set():
            return "abandoned"
        if verdict.error_kind == "infrastructure":
            # Our fault, not the code's: a system failure (not counted against the daily limit),
            # never a "rejected" verdict on the user's file.
            return self.fail(verdict.error or INTERNAL_ERROR)
        outcome = outcome_of(verdict)
        if not submission_flow.record_outcome(
            session_factory=self.factory,
            submission_id=self.submission_id,
            owner=self.owner,
            attempt=self.attempt,
            outcome=outcome,
            settings=self.settings,
        ):
            return "abandoned"
        send_posts(self.settings)
        return "rejected" if outcome.error else "verified"

    def crashed(self, exc: Exception) -> str:
        from puzzles.verify import SandboxUnavailable

        if isinstance(exc, SandboxUnavailable):
            log.error("submission %s: %s", self.submission_id, exc)
            return self.fail(SANDBOX_UNAVAILABLE)
        log.exception("submission %s: verification crashed", self.submission_id, exc_info=exc)
        return self.fail(INTERNAL_ERROR)


def run_verification(
    submission_id: int,
    *,
    settings: Settings | None = None,
    owner: str | None = None,
    enqueued_at: datetime | None = None,
) -> str:
    """Verify one submission if its row says it is ours to run; returns what happened."""
    settings = settings or get_settings()
    factory = runtime.sessions(settings)
    owner = owner or f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    attempt = submission_flow.start_run(
        session_factory=factory,
        submission_id=submission_id,
        owner=owner,
        settings=settings,
        enqueued_at=enqueued_at,
    )
    if attempt is None:
        log.info("submission %s is not claimable (done, running elsewhere, or gone)", submission_id)
        return "skipped"
    send_posts(settings)
    run = _Run(factory, settings, submission_id, owner, attempt)
    keeper = LeaseKeeper(
        factory=factory,
        settings=settings,
        submission_id=submission_id,
        owner=owner,
        attempt=attempt,
    )
    keeper.start()  # before anything slow: the lease must never lapse while we hold the job
    try:
        return run.verify(keeper)
    except SoftTimeLimitExceeded:
        return run.fail(time_limit_message(settings.task_time_limit))
    except Exception as exc:
        return run.crashed(exc)
    finally:
        keeper.stop()
