"""``circuitboard run``: the whole system in one process tree on whatever the settings point at.

On the embedded default that is a SQLite database and broker, a local worker subprocess, the
scheduler and the console (no Slack token) or Socket Mode (tokens set). ``--demo`` seeds a round
with a catalog puzzle and submits its reference solution, so a newcomer sees a verdict at once.
Shutdown (Ctrl-C, SIGTERM, end of input) stops the scheduler, flushes the outbox and stops the
worker; a job cut off mid-run is re-queued by the sweeper from its lease, so nothing is lost.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import TextIO

from sqlalchemy.orm import Session, sessionmaker

from bot.console import Console
from bot.flows.rounds import announce_round
from bot.scheduler import SchedulerService, start_scheduler
from bot.services import rounds
from bot.settings import Settings
from bot.worker.processes import LocalWorker, start_local_worker
from storage.db import session_factory as make_session_factory
from storage.db import session_scope, upgrade_database
from storage.models import Submission, SubmissionStatus, utcnow

log = logging.getLogger(__name__)

DEMO_PUZZLE = "palindromes"
DEMO_CHANNEL = "CDEMO"
FINAL = {SubmissionStatus.VERIFIED, SubmissionStatus.FAILED, SubmissionStatus.REJECTED}
VERDICT_POLL_S = 0.05
"""How often the demo reads its submission's row (a local SQLite read): the verdict shows at once."""


def start_worker(settings: Settings) -> LocalWorker:
    return start_local_worker(log_path=settings.data_dir / "worker.log")


@contextmanager
def background_services(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    worker: bool | LocalWorker,
    say: Callable[[str], None] = lambda _text: None,
) -> Iterator[tuple[LocalWorker | None, SchedulerService]]:
    """A local worker (started here, or already started and handed over) and the scheduler,
    stopped in the right order however we leave."""
    if isinstance(worker, LocalWorker):
        local: LocalWorker | None = worker
    else:
        local = start_worker(settings) if worker else None
    try:
        scheduler = start_scheduler(settings=settings, session_factory=factory)
    except BaseException:
        if local is not None:
            local.stop()
        raise
    try:
        yield local, scheduler
    finally:
        say("stopping: the scheduler")
        scheduler.stop()
        if local is not None:
            say(f"stopping: the verification worker (pid {local.pid})")
            local.stop()
        say("stopped")


def seed_demo_round(*, session: Session, settings: Settings) -> int:
    """The open round, or a new one on the demo puzzle opening now (idempotent across runs)."""
    now = utcnow()
    existing = rounds.current(session=session, now=now)
    if existing is not None:
        return existing.id
    round_ = rounds.plan(
        session=session,
        slug=DEMO_PUZZLE,
        channel_id=DEMO_CHANNEL,
        now=now,
        opens_at=now - timedelta(seconds=1),
        closes_at=now + timedelta(days=30),
        created_by="demo",
        settings=settings,
    )
    return round_.id


INSTALL_BWRAP = "sudo apt-get install -y bubblewrap"


def sandbox_problem(settings: Settings) -> str | None:
    """Why submissions cannot be verified on this machine, with the fix; None when they can.

    The demo asks before starting anything, so a newcomer reads the cause here rather than in a
    worker log: `bwrap` missing from PATH, or present but unable to create its namespaces.
    """
    if settings.unsafe_no_sandbox:
        return None
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return (
            "bubblewrap (`bwrap`) is not installed (not on PATH), and submissions are verified "
            f"only inside its sandbox. Install it with `{INSTALL_BWRAP}` (Debian/Ubuntu; "
            "`dnf install bubblewrap` on Fedora), then run this again."
        )
    flags = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    if os.geteuid() != 0:
        flags.append("--unshare-user")
    argv = [bwrap, *flags, "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc"]
    argv += ["--dev", "/dev", "--", sys.executable, "-c", "pass"]
    try:
        trial = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = str(exc)
    else:
        if trial.returncode == 0:
            return None
        reason = (trial.stderr.strip() or f"exit status {trial.returncode}").splitlines()[-1]
    return (
        f"bubblewrap ({bwrap}) is installed but cannot start a sandbox here: {reason}. "
        "It needs user namespaces: in a container run it with `--privileged` (or seccomp and "
        "AppArmor unconfined); on Ubuntu 24.04 allow them with "
        "`sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`."
    )


@dataclass(frozen=True)
class Outcome:
    status: SubmissionStatus
    passed: bool
    message: str | None


def wait_for_verdict(
    factory: sessionmaker[Session], submission_id: int, *, out: TextIO, timeout: float
) -> Outcome | None:
    """Poll the row (the truth) until the job ends, showing its live stage."""
    from rich.console import Console as RichConsole

    deadline = time.monotonic() + timeout
    shown = None
    with RichConsole(file=out).status("waiting for the worker") as status:
        while time.monotonic() < deadline:
            with session_scope(factory) as session:
                row = session.get(Submission, submission_id)
                assert row is not None
                if row.status in FINAL:
                    passed = bool(row.verdicts) and row.verdicts[-1].passed
                    return Outcome(status=row.status, passed=passed, message=row.message)
                stage = f"{row.status.value}: {row.stage or 'waiting for a worker'}"
            if stage != shown:
                status.update(f"submission #{submission_id} {stage}")
                shown = stage
            time.sleep(VERDICT_POLL_S)
    return None


def run_demo(console: Console, factory: sessionmaker[Session], *, out: TextIO) -> int:
    """Seed a round, submit the reference solution, wait for its verdict; 0 when it passed."""
    from puzzles.catalog import get_puzzle

    with session_scope(factory) as session:
        round_id = seed_demo_round(session=session, settings=console.settings)
    console.say(f"demo: round #{round_id} is open on '{DEMO_PUZZLE}'; announcing it")
    with session_scope(factory) as session:
        announce_round(session=session, round_id=round_id, now=utcnow())
    console.flush()
    solution = get_puzzle(DEMO_PUZZLE).solution_path
    console.say(f"demo: submitting the reference solution {solution.name}")
    submission_id = console.submit(solution)
    if submission_id is None:
        console.say("demo: the submission was refused (see above)")
        return 1
    row = wait_for_verdict(factory, submission_id, out=out, timeout=300)
    # The verdict's posts committed with it: send them now (a reply waits for its parent, which
    # the same pass sends first; a second pass catches what the first held back).
    for _ in range(3):
        if not console.flush():
            break
    if row is None:
        console.say(f"demo: no verdict after 300 s; see {console.settings.data_dir}/worker.log")
        return 1
    verdict = "PASSED" if row.passed else "did not pass"
    detail = verdict if row.status is SubmissionStatus.VERIFIED else row.message
    console.say(f"demo: submission #{submission_id} {row.status.value}: {detail}")
    return 0 if row.passed else 1


def _interrupt(*_: object) -> None:
    """SIGTERM (docker stop, systemd) leaves the way Ctrl-C does: through the finally blocks."""
    raise KeyboardInterrupt


def run_system(
    settings: Settings,
    *,
    demo: bool = False,
    worker: bool = True,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> int:
    """Migrate, start worker + scheduler, then serve Slack or the console until told to stop."""
    if demo and worker and (problem := sandbox_problem(settings)):
        out.write(f"demo: cannot verify solutions on this machine: {problem}\n")
        out.write(
            "demo: (to try the demo's own trusted reference solution without a sandbox: "
            "CIRCUITBOARD_UNSAFE_NO_SANDBOX=true circuitboard run --demo)\n"
        )
        out.flush()
        return 1
    settings.ensure_data_dir()
    # The worker first: its start-up (torch, the engine, a sandbox) is the longest wait before
    # a verdict, and overlaps the migration here (its broker tables are its own).
    local = start_worker(settings) if worker else None
    try:
        upgrade_database(settings.db_url)
    except BaseException:
        if local is not None:
            local.stop()
        raise
    factory = make_session_factory(settings.db_url)
    signal.signal(signal.SIGTERM, _interrupt)
    if not settings.console_mode:
        from bot.app import run_socket_mode

        services = background_services(settings, factory, worker=local or False)
        with services, suppress(KeyboardInterrupt):
            run_socket_mode(settings)
        return 0

    console = Console(settings, out=out, session_factory=factory)
    interactive = stdin.isatty()
    code = 0
    with background_services(settings, factory, worker=local or False, say=console.say) as (
        local,
        scheduler,
    ):
        console.say(
            f"circuitboard (console mode: no Slack token) on {settings.data_dir.resolve()}/; "
            f"worker pid {local.pid if local else 'external'}; {scheduler.message}"
        )
        console.dispatcher.start()
        try:
            if demo:
                code = run_demo(console, factory, out=out)
            if interactive or not demo:
                console.repl(stdin)
        except KeyboardInterrupt:
            pass
        finally:
            console.shutdown()
    return code
