"""Real ``circuitboard worker`` processes for tests (the queue tests and the end-to-end tests),
each in its own process group, with their logs printed when a test fails."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.worker.processes import LocalWorker, start_local_worker


class Workers:
    """Real ``circuitboard worker`` processes, each in its own process group."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[LocalWorker] = []

    def start(self, *, concurrency: int = 1) -> LocalWorker:
        log = self.log_dir / f"worker-{len(self.started)}.log"
        worker = start_local_worker(concurrency=concurrency, log_path=log)
        self.started.append(worker)
        return worker

    @staticmethod
    def ready(worker: LocalWorker) -> bool:
        return (
            worker.log_path is not None
            and worker.log_path.exists()
            and (" ready." in worker.log_path.read_text(errors="replace"))
        )

    def wait_ready(self, *workers: LocalWorker, timeout: float = 300) -> None:
        for worker in workers:
            deadline = time.monotonic() + timeout
            while not self.ready(worker):
                if not worker.alive():
                    self._dead(worker)
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out after {timeout:.0f} s: worker {worker.pid}")
                time.sleep(0.2)

    def _dead(self, worker: LocalWorker) -> bool:
        raise AssertionError(f"worker {worker.pid} exited:\n{self.logs()}")

    def holding(self, owner: str | None) -> LocalWorker | None:
        """The worker whose process group contains the lease owner's process."""
        if not owner:
            return None
        pid = int(owner.split("/")[1])
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            return None
        return next((w for w in self.started if w.pid == group and w.alive()), None)

    def logs(self) -> str:
        out = []
        for worker in self.started:
            if worker.log_path and worker.log_path.exists():
                tail = worker.log_path.read_text(errors="replace")[-4000:]
                out.append(f"--- {worker.log_path.name} (pid {worker.pid})\n{tail}")
        return "\n".join(out)

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop(timeout=10)


@contextmanager
def running_workers(log_dir: Path) -> Iterator[Workers]:
    workers = Workers(log_dir)
    try:
        yield workers
    except BaseException:
        print(workers.logs())
        raise
    finally:
        workers.stop_all()
