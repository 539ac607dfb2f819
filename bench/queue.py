"""The verification queue: throughput of 1 vs 2 workers on the same batch, and enqueue-to-start
latency on the embedded SQLite broker vs Redis. Real worker processes, real verification (the
palindromes puzzle with small held-out sets), prints ratios measured in this run::

    python bench/queue.py [--jobs 16] [--latency-jobs 10] [--redis-url redis://127.0.0.1:6379/14]

Throughput: each run starts its workers, warms each one with a job, then submits ``--jobs``
submissions from distinct users at once and times them to the last verdict. Latency: one job at
a time on an idle worker, from just before the upload's commit (the publish follows it) to the
worker's claim of the row. The database is SQLite in both latency runs, so only the broker differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's ``queue``: put the repository, not bench/, first.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402

from bot.flows import submission as submission_flow  # noqa: E402
from bot.services import submissions  # noqa: E402
from bot.settings import get_settings  # noqa: E402
from bot.worker.processes import LocalWorker, start_local_worker  # noqa: E402
from puzzles.catalog import get_puzzle  # noqa: E402
from storage.db import make_engine, session_factory, session_scope, upgrade_database  # noqa: E402
from storage.models import (  # noqa: E402
    PuzzleVersion,
    Round,
    RoundStatus,
    Submission,
    utcnow,
)

PUZZLE = "palindromes"
FINAL = ("verified", "failed", "rejected")


class Setup:
    """A fresh database (and broker) configured through the environment, as workers read it."""

    def __init__(self, root: Path, *, broker: str, redis_url: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        db = root / "circuitboard.db"
        os.environ.update(
            CIRCUITBOARD_DATA_DIR=str(root),
            CIRCUITBOARD_DATABASE_URL=f"sqlite:///{db}",
            CIRCUITBOARD_BROKER_URL=redis_url if broker == "redis" else f"sqla+sqlite:///{db}",
            CIRCUITBOARD_VERIFY_OVERRIDES='{"heldout_size": 200, "circuit_size": 100}',
            CIRCUITBOARD_DAILY_SUBMISSION_LIMIT="100000",
            OMP_NUM_THREADS="1",
        )
        if broker == "redis":
            import redis

            redis.Redis.from_url(redis_url).flushdb()
        get_settings.cache_clear()
        self.settings = get_settings()
        upgrade_database(self.settings.db_url)
        self.factory = session_factory(make_engine(self.settings.db_url))
        self.round_id = self._round()
        self.source = get_puzzle(PUZZLE).solution_path.read_bytes()
        self.log_dir = root
        self.workers: list[LocalWorker] = []
        self.count = 0

    def _round(self) -> int:
        puzzle = get_puzzle(PUZZLE)
        now = utcnow()
        with session_scope(self.factory) as session:
            version = PuzzleVersion(
                slug=PUZZLE,
                version=puzzle.version,
                weights_sha256=puzzle.weights_sha256,
                title=puzzle.title,
            )
            session.add(version)
            session.flush()
            round_ = Round(
                puzzle_version_id=version.id,
                channel_id="CBENCH",
                opens_at=now - timedelta(days=1),
                closes_at=now + timedelta(days=20),
                status=RoundStatus.OPEN,
            )
            session.add(round_)
            session.flush()
            return round_.id

    def start_workers(self, n: int) -> None:
        for _ in range(n):
            log = self.log_dir / f"worker-{len(self.workers)}.log"
            self.workers.append(start_local_worker(log_path=log, loglevel="WARNING"))

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop(timeout=20)
        self.workers.clear()

    def submit(self, n: int) -> list[int]:
        ids = []
        with submission_flow.unit_of_work(self.factory) as session:  # published after commit
            for _ in range(n):
                self.count += 1
                row = submissions.create_submission(
                    session=session,
                    round_id=self.round_id,
                    user_id=f"B{self.count}",
                    filename="solution.py",
                    content=self.source + f"\n# {self.count}\n".encode(),
                )
                ids.append(row.id)
        return ids

    def statuses(self, ids: list[int]) -> dict[int, str]:
        with session_scope(self.factory) as session:
            query = session.query(Submission.id, Submission.status).filter(Submission.id.in_(ids))
            return {sid: str(status) for sid, status in query}

    def wait_final(self, ids: list[int], timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = self.statuses(ids)
            if all(state in FINAL for state in states.values()):
                bad = {sid: s for sid, s in states.items() if s != "verified"}
                if bad:
                    raise SystemExit(f"jobs not verified: {bad} (logs in {self.log_dir})")
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out; logs in {self.log_dir}")
            time.sleep(0.1)


def throughput(root: Path, *, workers: int, jobs: int, redis_url: str) -> float:
    """Seconds for ``jobs`` verifications on ``workers`` warmed-up workers."""
    setup = Setup(root, broker="sqlite", redis_url=redis_url)
    try:
        setup.start_workers(workers)
        # one job per worker to warm it (model load, first sandbox): steady state is measured
        setup.wait_final(setup.submit(workers))
        started = time.perf_counter()
        setup.wait_final(setup.submit(jobs))
        return time.perf_counter() - started
    finally:
        setup.stop_workers()


def latency(root: Path, *, broker: str, jobs: int, redis_url: str) -> list[float]:
    """Enqueue-to-claim seconds for ``jobs`` jobs sent one at a time to an idle worker."""
    setup = Setup(root, broker=broker, redis_url=redis_url)
    samples = []
    try:
        setup.start_workers(1)
        setup.wait_final(setup.submit(1))
        for _ in range(jobs):
            time.sleep(0.5)  # idle: the worker is waiting on the broker
            started = time.perf_counter()
            (sid,) = setup.submit(1)
            while setup.statuses([sid])[sid] in ("received", "queued"):
                time.sleep(0.002)
            samples.append(time.perf_counter() - started)
            setup.wait_final([sid])
        return samples
    finally:
        setup.stop_workers()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--latency-jobs", type=int, default=10)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="cb-bench-queue-"))
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}, work dir: {root}")
    if not args.skip_throughput:
        one = throughput(root / "one", workers=1, jobs=args.jobs, redis_url=args.redis_url)
        two = throughput(root / "two", workers=2, jobs=args.jobs, redis_url=args.redis_url)
        print(
            f"throughput, {args.jobs} jobs ({PUZZLE}, SQLite broker): "
            f"1 worker {one:.1f} s ({args.jobs / one:.2f} jobs/s), "
            f"2 workers {two:.1f} s ({args.jobs / two:.2f} jobs/s): "
            f"ratio {one / two:.2f}x (goal >= 1.8x on 2 cores)"
        )
    if not args.skip_latency:
        results = {}
        for broker in ("sqlite", "redis"):
            samples = latency(
                root / f"latency-{broker}",
                broker=broker,
                jobs=args.latency_jobs,
                redis_url=args.redis_url,
            )
            results[broker] = statistics.median(samples)
            print(
                f"enqueue-to-start latency, {broker} broker: median {results[broker] * 1000:.0f} ms, "
                f"max {max(samples) * 1000:.0f} ms over {len(samples)} jobs"
            )
        print(f"latency ratio sqlite/redis: {results['sqlite'] / results['redis']:.1f}x")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
