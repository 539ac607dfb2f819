"""The Celery app both sides share: the bot publishes by task name, workers consume (see
``bot.worker.tasks``).

Nothing here imports torch or the verification engine, so the Slack process stays small. The queue
is only transport: the submission row is the truth, and the sweeper in ``bot.services.sweeper``
re-sends whatever a broker loses (kombu's SQLAlchemy transport drops unacked messages on kill -9;
Redis hands them back only after its visibility timeout).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from celery import Celery
from kombu import Queue
from kombu.transport import sqlalchemy as kombu_sqla

from bot.settings import Settings, get_settings
from storage.db import make_engine, sqlite_path

log = logging.getLogger(__name__)

VERIFY_TASK = "circuitboard.verify_submission"
"""The verification task's name: the bot sends it by name and never imports its body."""

GPU_QUEUE = "gpu"
CPU_QUEUE = "cpu"
QUEUES = (GPU_QUEUE, CPU_QUEUE)

SQLA_POLL_SECONDS = 0.1
"""How often an idle worker polls the SQLAlchemy broker (Redis pushes; SQL has to be asked)."""

_LIBRARY_OPTIONS = ("polling_interval", "visibility_timeout")


class _SQLChannel(kombu_sqla.Channel):
    """kombu's SQLAlchemy channel on our engines: WAL and a 30 s busy timeout on SQLite.

    The stock channel passes every transport option to ``create_engine`` (so a polling interval
    cannot be set) and opens SQLite with a 5 s timeout, where a busy database fails a publish.
    """

    _engines: dict[str, Any] = {}  # own cache, so a forked worker child can drop its parent's

    def _engine_from_config(self):  # type: ignore[no-untyped-def]
        url = self.connection.client.hostname
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            return make_engine(url)
        return make_engine(url, pool_size=2)


class SQLTransport(kombu_sqla.Transport):
    Channel = _SQLChannel
    polling_interval = SQLA_POLL_SECONDS


def reset_after_fork() -> None:
    """Forget broker engines inherited from a parent process (SQLite connections must not cross fork)."""
    for engine, _session in _SQLChannel._engines.values():
        engine.dispose(close=False)
    _SQLChannel._engines.clear()


def is_sql_broker(url: str) -> bool:
    return url.split("://", 1)[0].split("+", 1)[0] in ("sqla", "sqlalchemy")


def _broker_settings(settings: Settings) -> dict[str, Any]:
    url = settings.effective_broker_url
    if is_sql_broker(url):
        return {
            "broker_url": url.split("+", 1)[1],
            "broker_transport": SQLTransport,
            "broker_transport_options": {},
            # the SQL transport has no fanout: no remote control, mingle or gossip.
            "worker_enable_remote_control": False,
        }
    # Redis (and SQS) hand an unacked message to another worker after the visibility timeout;
    # it must outlast the longest task, or a running job would be started twice.
    visibility = max(3600.0, 2 * (settings.task_time_limit + settings.lease_seconds))
    return {
        "broker_url": url,
        "broker_transport_options": {"visibility_timeout": visibility},
        "worker_enable_remote_control": True,
    }


def hard_time_limit(settings: Settings) -> float:
    """When Celery kills a stuck worker child: after our own limit and a grace to report it."""
    return settings.task_time_limit + max(5.0, 0.1 * settings.task_time_limit)


def make_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured from settings; ``bot.worker.tasks`` registers the task bodies on it."""
    settings = settings or get_settings()
    app = Celery("circuitboard", set_as_current=False)
    app.conf.update(
        _broker_settings(settings),
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_acks_late=True,
        # A worker that dies mid-job loses its message: the lease + sweeper recover the row, and
        # a redelivered copy would only find the job claimed.
        task_reject_on_worker_lost=False,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_time_limit + 1.0,
        task_time_limit=hard_time_limit(settings),
        task_default_queue=CPU_QUEUE,
        task_queues=[Queue(name, routing_key=name) for name in QUEUES],
        task_routes={VERIFY_TASK: {"queue": CPU_QUEUE}},
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app


_apps: dict[tuple[str, float, float], Celery] = {}
_apps_lock = threading.Lock()


def get_app(settings: Settings | None = None) -> Celery:
    """One app per broker configuration per process (its producer pool is reused)."""
    settings = settings or get_settings()
    key = (settings.effective_broker_url, settings.task_time_limit, settings.lease_seconds)
    with _apps_lock:
        if key not in _apps:
            _apps[key] = make_app(settings)
        return _apps[key]


def queue_for(verify_config: Mapping[str, Any], settings: Settings | None = None) -> str:
    """``gpu`` when the puzzle asks for one and GPU workers exist, else ``cpu``."""
    settings = settings or get_settings()
    wants_gpu = str(verify_config.get("device", "cpu")).lower() in ("gpu", "cuda")
    return GPU_QUEUE if wants_gpu and settings.gpu_workers else CPU_QUEUE


def enqueue_verification(
    *, submission_id: int, queue: str = CPU_QUEUE, settings: Settings | None = None
) -> str:
    """Publish the verification message for a submission row that is already committed as queued.

    Raises when the broker refuses the publish; callers that cannot handle it leave the row
    queued and the sweeper re-sends it.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; queues are {', '.join(QUEUES)}")
    from storage.models import utcnow

    app = get_app(settings)
    result = app.send_task(
        VERIFY_TASK,
        args=[submission_id],
        # When it was handed to the broker: the worker records it with its claim (timings).
        kwargs={"enqueued_at": utcnow().isoformat()},
        queue=queue,
        routing_key=queue,
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
    )
    return str(result.id)


def queue_depth(settings: Settings | None = None) -> dict[str, int]:
    """Messages waiting in each queue (not those a worker has taken and not yet acknowledged)."""
    app = get_app(settings)
    depth: dict[str, int] = {}
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        for name in QUEUES:
            try:
                depth[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except Exception:  # never declared on this broker: nothing was sent to it
                depth[name] = 0
    return depth
