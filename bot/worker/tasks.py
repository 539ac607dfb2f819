"""The Celery tasks (``celery -A bot.worker.tasks worker``) and the worker process around them.

The task body is ``bot.worker.verification.run_verification``; ``circuitboard worker``
(``run_worker`` here) starts a worker with the settings' queues and concurrency.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from bot.queue import CPU_QUEUE, GPU_QUEUE, VERIFY_TASK, get_app, reset_after_fork
from bot.settings import Settings, get_settings
from bot.worker import runtime, sender
from bot.worker.processes import worker_argv
from bot.worker.sandbox_check import check_sandbox
from bot.worker.verification import run_verification
from bot.worker.warmup import warm_up


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    """A fresh worker child: no database or broker connections inherited from the parent."""
    runtime.forget_inherited()
    sender.forget_inherited()
    reset_after_fork()
    warm_up(get_settings())


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
    # ``celery -A bot.worker.tasks worker`` looks up ``bot.worker.tasks.app``; build it on first use only.
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
        import bot.posts.submissions  # noqa: F401  (views, outbox)


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
