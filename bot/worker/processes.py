"""Worker processes: the ``celery worker`` arguments, and a worker started beside the bot
(``circuitboard run``, the console, tests). No torch here: the bot imports this."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.queue import CPU_QUEUE, QUEUES


def worker_argv(
    *, queues: Sequence[str], concurrency: int, loglevel: str = "INFO", name: str | None = None
) -> list[str]:
    """The ``celery worker`` arguments every circuitboard worker runs with."""
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown or not queues:
        raise ValueError(f"queues must be among {', '.join(QUEUES)}; got {', '.join(queues)}")
    return [
        "worker",
        "--queues",
        ",".join(queues),
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",  # per-task time limits need a killable child process
        "--optimization",
        "fair",  # hand a job only to an idle child (prefetch 1 per child)
        "--hostname",
        name or f"circuitboard-{os.getpid()}-{uuid.uuid4().hex[:6]}@%h",
        "--loglevel",
        loglevel,
        "--without-mingle",
        "--without-gossip",
    ]


@dataclass
class LocalWorker:
    """A ``circuitboard worker`` subprocess in its own process group (see ``start_local_worker``)."""

    process: subprocess.Popen[bytes]
    log_path: Path | None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, *, timeout: float = 15.0) -> int | None:
        """Warm shutdown (SIGTERM: finish the running job); past ``timeout`` kill the group.

        A job cut off by the kill is recovered by the sweeper once its lease expires.
        """
        if self.process.poll() is None:
            deadline = time.monotonic() + timeout
            try:
                while self.process.poll() is None:
                    if time.monotonic() >= deadline:
                        self.kill()
                        break
                    # Repeated each second: Celery treats it as the same warm shutdown, and the
                    # signal wakes its main thread, which otherwise sat in billiard's pool-close
                    # join until the kill 15 s later although the pool had already stopped.
                    self.process.send_signal(signal.SIGTERM)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.process.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            except ProcessLookupError:
                pass
        # children of a finished worker must not linger either
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait()

    def kill(self) -> None:
        """kill -9 the worker and its pool children, as a crashed machine would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def start_local_worker(
    *,
    queues: Sequence[str] = (CPU_QUEUE,),
    concurrency: int = 1,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    loglevel: str = "INFO",
) -> LocalWorker:
    """Start ``circuitboard worker`` beside this process (``circuitboard run`` uses it).

    The child reads the same settings (environment / .env); ``env`` adds to this process's
    environment. Stop it with ``LocalWorker.stop()``.
    """
    argv = [
        sys.executable,
        "-c",
        "from bot.cli import main; main()",
        "worker",
        "--queues",
        ",".join(queues),
        "--concurrency",
        str(concurrency),
        "--loglevel",
        loglevel,
    ]
    child_env = {**os.environ, **(env or {})}
    out: Any = subprocess.DEVNULL
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = log_path.open("ab")
    try:
        process = subprocess.Popen(
            argv,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log_path is not None:
            out.close()
    return LocalWorker(process=process, log_path=log_path)
