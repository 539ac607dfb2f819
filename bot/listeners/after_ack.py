"""Work a listener does after its ack, on a small dedicated pool.

Slack needs the ack within 3 seconds; the answer itself may take a few milliseconds of database
and rendering work. Doing that work on Bolt's listener threads lets a burst of commands compete
for the interpreter with the acks still waiting to be sent (measured: ~3.5x the ack latency of a
bare app under 50 concurrent commands). Two background threads keep the acks first in line,
and they wait (at most ``MAX_DEFER_S``) while the HTTP server still has requests to answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="after-ack")
MAX_DEFER_S = 0.5

_in_flight = 0
_lock = threading.Lock()


class request_in_flight:  # noqa: N801 (used as a context manager, like a function)
    """Marks an HTTP request as not yet answered; after-ack work yields to it."""

    def __enter__(self) -> None:
        global _in_flight
        with _lock:
            _in_flight += 1

    def __exit__(self, *exc: object) -> None:
        global _in_flight
        with _lock:
            _in_flight -= 1


def yield_to_acks(max_wait: float = MAX_DEFER_S) -> None:
    """Wait (at most ``max_wait``) until no HTTP request is waiting for its answer."""
    deadline = time.monotonic() + max_wait
    while _in_flight > 0 and time.monotonic() < deadline:
        time.sleep(0.002)


def run_logged(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` once no ack waits, its failure logged (and raised to the future)."""
    yield_to_acks()
    try:
        return fn(*args, **kwargs)
    except Exception:
        log.exception("after-ack work %s failed", getattr(fn, "__name__", fn))
        raise


def after_ack(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
    """Run ``fn(*args, **kwargs)`` soon, off the listener thread; failures are logged."""
    return _POOL.submit(run_logged, fn, *args, **kwargs)
