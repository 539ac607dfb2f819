"""Whether this worker can start a sandbox, said in the log and (when it cannot) to the admins."""

from __future__ import annotations

import logging
import socket

from bot.posts.admins import notify_admins
from bot.settings import Settings
from bot.worker import runtime
from storage.db import session_scope
from storage.models import utcnow

log = logging.getLogger(__name__)


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
    host = socket.gethostname()
    text = (
        f"The verification worker on {host} cannot start its sandbox, so submissions are not "
        f"being verified there: {problem}. See the README's sandbox section."
    )
    with session_scope(runtime.sessions(settings)) as session:
        key = f"notice:sandbox:{host}:{utcnow():%Y-%m-%d}"
        notify_admins(session=session, settings=settings, key=key, text=text)
