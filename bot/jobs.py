"""The worker side of the queue: the verification task body (this module may load torch).

A task carries only a submission id. The body claims the row with a lease, renews it while the
engine runs, writes the stages as they happen, and records one verdict for its attempt, all
conditional on still holding the lease; the row (not the broker) decides whether a delivery does
anything. After each committed change it tells ``bot.services.notifications``.

Start workers with ``circuitboard worker`` (``run_worker`` here) or ``celery -A bot.jobs worker``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init
from sqlalchemy.orm import Session, sessionmaker

from bot.queue import CPU_QUEUE, GPU_QUEUE, VERIFY_TASK, get_app, reset_after_fork, worker_argv
from bot.services import submissions, timings
from bot.settings import Settings, get_settings
from storage.db import session_factory, session_scope
from storage.models import Submission

if TYPE_CHECKING:
    from puzzles.catalog import Puzzle

log = logging.getLogger(__name__)

_factories: dict[str, sessionmaker[Session]] = {}
_puzzles: dict[str, Puzzle] = {}
_pools: dict[Any, Any] = {}
_device: str | None = None

TIMING_ONLY_STAGES = frozenset({"sandbox ready"})
"""Engine stages recorded in the timings but not shown to the user (no status edit)."""


def _session_factory(settings: Settings) -> sessionmaker[Session]:
    url = settings.db_url
    if url not in _factories:
        from storage.db import make_engine

        _factories[url] = session_factory(make_engine(url))
    return _factories[url]


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    """A fresh worker child: no database or broker connections inherited from the parent."""
    for factory in _factories.values():
        bind = factory.kw.get("bind")
        if bind is not None:
            bind.dispose(close=False)
    _factories.clear()
    _pools.clear()
    _senders.clear()  # a dispatcher thread does not survive the fork
    reset_after_fork()
    _warm_up(get_settings())


def _warm_up(settings: Settings) -> None:
    """Start a sandbox per distinct limits of the catalog now, and load the puzzle models in
    the background, so the first job waits for neither.

    Starting is a Popen (torch is imported inside it in the background) and the models load
    in a thread: cheap enough for Celery's child start-up timeout.
    """
    try:
        from puzzles.catalog import list_puzzles

        slugs = [entry.slug for entry in list_puzzles()]
        for slug in slugs:
            _sandbox_pool(_puzzle(slug, settings), settings)
    except Exception:  # a warm-up problem shows up again, with its real message, in the job
        log.warning("worker warm-up failed", exc_info=True)
        return
    threading.Thread(
        target=_load_models, args=(slugs, settings), name="model-warm-up", daemon=True
    ).start()


def _load_models(slugs: list[str], settings: Settings) -> None:
    from puzzles.verify.engine import preload_hard_set, preload_model

    for slug in slugs:
        try:
            preload_model(_puzzle(slug, settings), worker_device())
        except Exception:  # the job loads it again and reports a real problem itself
            log.warning("could not preload the model of %s", slug, exc_info=True)
    try:
        with session_scope(_session_factory(settings)) as session:
            open_rounds = _open_rounds(session)
    except Exception:  # no database yet (a worker started before `db upgrade`): the job mines it
        log.warning("could not list the open rounds to mine their hard sets", exc_info=True)
        return
    for round_id, slug in open_rounds:
        try:
            seed = hard_set_seed(settings, slug, round_id)
            preload_hard_set(_puzzle(slug, settings), seed=seed, device=worker_device())
        except Exception:
            log.warning("could not mine the hard set of round %s", round_id, exc_info=True)


def worker_device() -> str:
    """Chosen once per process: CUDA when this machine has it, else the CPU."""
    global _device
    if _device is None:
        import torch

        _device = "cuda" if torch.cuda.is_available() else "cpu"
    return _device


def _open_rounds(session: Session) -> list[tuple[int, str]]:
    """(round id, puzzle slug) of every open round."""
    from sqlalchemy import select

    from storage.models import PuzzleVersion, Round, RoundStatus

    query = select(Round.id, PuzzleVersion.slug).join(Round.puzzle_version)
    return [
        (rid, slug) for rid, slug in session.execute(query.where(Round.status == RoundStatus.OPEN))
    ]


def hard_set_seed(settings: Settings, slug: str, round_id: int) -> int:
    """The hard set's secret seed: one per round, so a worker mines it once per round (seconds
    of forward passes) and every submission of the round is checked on the same mined set."""
    return secret_seed(settings, slug, salt=f"round:{round_id}:hardset")


def secret_seed(settings: Settings, slug: str, *, salt: str = "") -> int:
    """The held-out seed: the configured secret (else one kept in ``data_dir``), the puzzle and
    ``salt`` (the round and submission), so every submission gets a fresh secret draw and
    nothing one submission prints about its inputs helps a later one. Re-verifying the same
    submission draws the same set again.

    The fallback file suits one machine; workers on several machines need the same
    ``CIRCUITBOARD_VERIFICATION_SEED`` so a re-verification on another worker matches.
    """
    if settings.verification_seed is not None:
        secret = settings.verification_seed.get_secret_value()
    else:
        path = settings.ensure_data_dir() / "verification_seed"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(16))
        secret = path.read_text().strip()
    digest = hashlib.sha256(f"{secret}:{slug}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def _puzzle(slug: str, settings: Settings) -> Puzzle:
    """Catalog entries are read once per process, with the ``verify_overrides`` merged in."""
    key = f"{slug}:{sorted(settings.verify_overrides.items())}"
    if key not in _puzzles:
        from puzzles.catalog import get_puzzle

        puzzle = get_puzzle(slug)
        if settings.verify_overrides:
            verify = {**puzzle.verify, **settings.verify_overrides}
            config = {**puzzle.config, "verify": verify}
            puzzle = dataclasses.replace(puzzle, verify=verify, config=config)
        _puzzles[key] = puzzle
    return _puzzles[key]


def _sandbox_pool(puzzle: Puzzle, settings: Settings) -> Any:
    """One pre-started sandbox per limits per process, so the next job skips the torch import."""
    if settings.unsafe_no_sandbox:
        return None
    from puzzles.verify import SandboxLimits, SandboxPool

    limits = SandboxLimits.from_config(puzzle.verify)
    if limits not in _pools:
        _pools[limits] = SandboxPool(size=1, limits=limits)
    return _pools[limits]


_senders: dict[str, Any] = {}

WORKER_OUTBOX_INTERVAL_S = 5.0
"""The worker's own outbox pass between wakes: a backstop, the bot's dispatcher sends too."""


def _send_posts(settings: Settings) -> None:
    """Send the posts this worker just committed, now, from this process.

    Called after each commit that queued posts (explicitly, not from a commit hook), so a
    verdict reaches Slack without waiting for another process to look. The outbox's claim makes
    this safe beside the bot's own dispatcher: each row is sent by whichever claims it first.
    Without a bot token (console mode) the process that has the client sends them.
    """
    if settings.slack_bot_token is None:
        return
    sender = _senders.get(settings.db_url)
    if sender is None:
        from slack_sdk import WebClient

        from bot.outbox import Dispatcher

        client = WebClient(
            token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
        )
        sender = Dispatcher(
            session_factory=_session_factory(settings),
            client=client,
            interval=WORKER_OUTBOX_INTERVAL_S,
        ).start()
        _senders[settings.db_url] = sender
    sender.wake()


def stop_senders() -> None:
    """Stop the outbox senders this process started (tests; a worker's threads end with it)."""
    while _senders:
        _, sender = _senders.popitem()
        sender.stop()


def _notify_within(session: Session, submission_id: int) -> None:
    """Queue a final state's posts in the transaction that records it.

    A worker killed between two transactions would otherwise leave a verdict nobody is told of
    (the sweeper only recovers unfinished rows). A savepoint keeps a notification error from
    undoing the verdict itself.
    """
    from bot.services import notifications

    try:
        with session.begin_nested():
            notifications.submission_updated(session=session, submission_id=submission_id)
    except Exception:
        log.exception("notification for submission %s failed", submission_id)


def time_limit_message(limit: float) -> str:
    return (
        f"Verification took longer than the {limit:.0f} s limit and was stopped. Make sure "
        "`predict` handles a whole batch quickly (vectorised torch, no per-example Python loops), "
        "then upload again; this run does not count toward your daily limit."
    )


INTERNAL_ERROR = (
    "The verifier hit an internal error on our side (not in your solution); admins can see it "
    "in the worker log. This run does not count toward your daily limit; please upload again later."
)


class _LeaseKeeper(threading.Thread):
    """Renews the lease while the engine runs; fails the job at the time limit.

    Recording the time-limit failure here (not only when Celery's soft limit raises) means the
    user gets an answer even if the engine swallows the exception or sits in C code; Celery's
    hard limit then kills the child process and the pool replaces it.
    """

    def __init__(
        self,
        *,
        factory: sessionmaker[Session],
        settings: Settings,
        submission_id: int,
        owner: str,
        attempt: int,
    ) -> None:
        super().__init__(name=f"lease-{submission_id}", daemon=True)
        self.factory = factory
        self.settings = settings
        self.submission_id = submission_id
        self.owner = owner
        self.attempt = attempt
        self.deadline = time.monotonic() + settings.task_time_limit
        self.finished = threading.Event()
        self.lost = threading.Event()
        self.timed_out = threading.Event()

    def run(self) -> None:
        interval = max(0.2, self.settings.lease_seconds / 4)
        while True:
            left = self.deadline - time.monotonic()
            if self.finished.wait(max(0.0, min(interval, left))):
                return
            if time.monotonic() >= self.deadline:
                self._time_out()
                return
            try:
                with session_scope(self.factory) as session:
                    held = submissions.renew_lease(
                        session=session,
                        submission_id=self.submission_id,
                        owner=self.owner,
                        attempt=self.attempt,
                        settings=self.settings,
                    )
            except Exception:  # a busy or unreachable database: try again next tick
                log.warning("lease renewal for %s failed", self.submission_id, exc_info=True)
                continue
            if not held:
                if not self.finished.is_set():
                    log.warning("lost the lease on submission %s", self.submission_id)
                    self.lost.set()
                return

    def _time_out(self) -> None:
        self.timed_out.set()
        with session_scope(self.factory) as session:
            failed = submissions.fail(
                session=session,
                submission_id=self.submission_id,
                owner=self.owner,
                attempt=self.attempt,
                message=time_limit_message(self.settings.task_time_limit),
                settings=self.settings,
            )
            if failed:
                _notify_within(session, self.submission_id)
        if failed:
            _send_posts(self.settings)
            log.warning("submission %s exceeded the time limit", self.submission_id)

    def stop(self) -> None:
        self.finished.set()


def _outcome(verdict: Any) -> submissions.Outcome:
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
    return submissions.Outcome(
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


def run_verification(
    submission_id: int,
    *,
    settings: Settings | None = None,
    owner: str | None = None,
    enqueued_at: datetime | None = None,
) -> str:
    """Verify one submission if its row says it is ours to run; returns what happened."""
    settings = settings or get_settings()
    factory = _session_factory(settings)
    owner = owner or f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    with session_scope(factory) as session:
        attempt = submissions.claim(
            session=session, submission_id=submission_id, owner=owner, settings=settings
        )
        if attempt is not None:
            if enqueued_at is not None:
                timings.mark(
                    session=session,
                    submission_id=submission_id,
                    stage=timings.ENQUEUED,
                    attempt=attempt,
                    at=enqueued_at,
                )
            # The user sees "running" with the claim, not one transaction later.
            _notify_within(session, submission_id)
    if attempt is None:
        log.info("submission %s is not claimable (done, running elsewhere, or gone)", submission_id)
        return "skipped"
    _send_posts(settings)
    keeper = _LeaseKeeper(
        factory=factory,
        settings=settings,
        submission_id=submission_id,
        owner=owner,
        attempt=attempt,
    )
    keeper.start()  # before anything slow: the lease must never lapse while we hold the job

    def fail(message: str) -> str:
        with session_scope(factory) as session:
            done = submissions.fail(
                session=session,
                submission_id=submission_id,
                owner=owner,
                attempt=attempt,
                message=message,
                settings=settings,
            )
            if done:
                _notify_within(session, submission_id)
        if done:
            _send_posts(settings)
        return "failed"

    def progress(stage: str) -> None:
        changed = False
        try:
            with session_scope(factory) as session:
                timings.mark(
                    session=session, submission_id=submission_id, stage=stage, attempt=attempt
                )
                if stage in TIMING_ONLY_STAGES:
                    return
                changed = submissions.set_stage(
                    session=session,
                    submission_id=submission_id,
                    owner=owner,
                    attempt=attempt,
                    stage=stage,
                )
                if changed:  # the status edit commits with the stage it shows
                    _notify_within(session, submission_id)
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # progress is informative; a busy database must not fail the job
            log.warning("could not record stage %r of %s", stage, submission_id, exc_info=True)
            return
        if changed:
            _send_posts(settings)

    try:
        with session_scope(factory) as session:
            row = session.get(Submission, submission_id)
            assert row is not None
            source = submissions.read_content(session=session, submission=row)
            filename = row.filename
            slug = row.round.puzzle_version.slug
            round_id = row.round_id
            salt = f"round:{round_id}:submission:{row.id}"
        from puzzles.verify import verify_submission

        puzzle = _puzzle(slug, settings)
        verdict = verify_submission(
            source,
            filename,
            puzzle,
            seed=secret_seed(settings, slug, salt=salt),
            hard_seed=hard_set_seed(settings, slug, round_id),
            device=worker_device(),
            sandbox=not settings.unsafe_no_sandbox,
            progress=progress,
            pool=_sandbox_pool(puzzle, settings),
        )
        keeper.stop()  # recording needs the lease held, not unexpired
        if keeper.timed_out.is_set() or keeper.lost.is_set():
            return "abandoned"
        if verdict.error_kind == "infrastructure":
            # Our fault, not the code's: a system failure (not counted against the daily limit),
            # never a "rejected" verdict on the user's file.
            return fail(verdict.error or INTERNAL_ERROR)
        outcome = _outcome(verdict)
        with session_scope(factory) as session:
            recorded = submissions.record_verdict(
                session=session,
                submission_id=submission_id,
                owner=owner,
                attempt=attempt,
                outcome=outcome,
                settings=settings,
            )
            if recorded is not None:
                _notify_within(session, submission_id)
        if recorded is None:
            return "abandoned"
        _send_posts(settings)
        return "rejected" if outcome.error else "verified"
    except SoftTimeLimitExceeded:
        return fail(time_limit_message(settings.task_time_limit))
    except Exception as exc:
        from puzzles.verify import SandboxUnavailable

        if isinstance(exc, SandboxUnavailable):
            log.error("submission %s: %s", submission_id, exc)
            return fail(
                "Verification is unavailable on this worker (its sandbox cannot start). "
                "Admins have been told; this run does not count toward your daily limit."
            )
        log.exception("submission %s: verification crashed", submission_id)
        return fail(INTERNAL_ERROR)
    finally:
        keeper.stop()


def verify_submission_task(submission_id: int, enqueued_at: str | None = None) -> str:
    """The Celery task (``VERIFY_TASK``): everything is in ``run_verification``."""
    published = None
    if enqueued_at:
        with contextlib.suppress(ValueError):
            published = datetime.fromisoformat(enqueued_at)
    return run_verification(int(submission_id), enqueued_at=published)


def make_worker_app(settings: Settings | None = None) -> Celery:
    """The shared app with the task bodies registered (only worker processes need them)."""
    app = get_app(settings)
    if VERIFY_TASK not in app.tasks:
        app.task(name=VERIFY_TASK, acks_late=True, ignore_result=True)(verify_submission_task)
    return app


def __getattr__(name: str) -> Any:
    # ``celery -A bot.jobs worker`` looks up ``bot.jobs.app``; build it on first use only.
    if name in ("app", "celery"):
        return make_worker_app()
    raise AttributeError(name)


def default_queues() -> list[str]:
    """``gpu,cpu`` on a machine with a CUDA device, else ``cpu``."""
    # NVML answers without initialising CUDA, so the forked pool children can still use it.
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch

    return [GPU_QUEUE, CPU_QUEUE] if torch.cuda.is_available() else [CPU_QUEUE]


def _preload() -> None:
    """Import the engine's heavy modules before forking, so every pool child starts warm."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.figure  # noqa: F401

    import puzzles.models  # noqa: F401  (transformer_lens)
    import puzzles.verify.engine  # noqa: F401  (torch)

    with contextlib.suppress(ImportError):
        import bot.services.notifications  # noqa: F401  (views, outbox)


def check_sandbox(settings: Settings) -> str | None:
    """Whether this worker can start a sandbox; logs the verdict and, when it cannot, queues a
    notice to the admins (once per host and day). Returns the reason, or None when it works."""
    if settings.unsafe_no_sandbox:
        log.warning("sandbox: DISABLED (unsafe_no_sandbox): submission code runs unsandboxed")
        return None
    from puzzles.verify.sandbox import describe_limits, self_check

    problem = self_check()
    if problem is None:
        log.info("sandbox: ok; %s", describe_limits())
        return None
    log.error("sandbox: cannot start, so no submission can be verified here: %s", problem)
    try:
        _notify_admins_of_sandbox(settings, problem)
    except Exception:  # the log line above stays; a database problem shows up on its own
        log.warning("could not queue the sandbox notice for admins", exc_info=True)
    return problem


def _notify_admins_of_sandbox(settings: Settings, problem: str) -> None:
    from bot.posts.admins import notify_admins
    from storage.models import utcnow

    host = socket.gethostname()
    text = (
        f"The verification worker on {host} cannot start its sandbox, so submissions are not "
        f"being verified there: {problem}. See the README's sandbox section."
    )
    with session_scope(_session_factory(settings)) as session:
        key = f"notice:sandbox:{host}:{utcnow():%Y-%m-%d}"
        notify_admins(session=session, settings=settings, key=key, text=text)


def run_worker(
    *,
    queues: Sequence[str] | None = None,
    concurrency: int = 1,
    loglevel: str = "INFO",
    settings: Settings | None = None,
) -> None:
    """Run a worker in this process until it is told to stop (SIGTERM: finish the job first)."""
    settings = settings or get_settings()
    # Each pool child verifies one job at a time: give each its share of the cores.
    threads = max(1, (os.cpu_count() or 1) // max(1, concurrency))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    queues = list(queues) if queues else default_queues()
    check_sandbox(settings)  # says in the log (and to admins) why a sandbox cannot start
    _preload()

    app = make_worker_app(settings)
    app.worker_main(worker_argv(queues=queues, concurrency=concurrency, loglevel=loglevel))
