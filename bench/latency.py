"""Upload-to-verdict latency through the whole system, as a Slack user meets it, stage by stage.

Real processes: ``circuitboard bot --http`` (the Slack app, its outbox dispatcher and the
scheduler) and ``circuitboard worker``, talking to the fake Slack Web API server in this process
(``tests/fakes/slack.py``), on the embedded default (SQLite database and broker) and on
PostgreSQL + Redis. Each upload is a signed DM ``file_share`` event, as Slack sends it; the
latency ends when the fake Slack receives the verdict post. Uploads are one at a time (each from
its own user), so this is latency, not throughput. Per upload the system's own stage timings
(``bot.services.timings``) give the breakdown.

Printed, per backend: the first upload after start (cold: sent as soon as the bot answers, the
worker may still be starting) and from the processes' start; p50/p90 of the warm uploads; the
median step between consecutive stages; and, as the baseline measured in the same run, the
verification itself (the engine's own runtime in each verdict): the ratio says how much of
what a user waits is the system rather than the verification.

    python bench/latency.py [--uploads 8] [--backend sqlite|postgres|both]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--redis-url redis://127.0.0.1:6379/7]

The Redis database given is flushed first: give one nothing else uses while it runs (a worker
of another run on it would take this run's messages).
"""

from __future__ import annotations

import sys

# Run as `python bench/latency.py`, this folder is sys.path[0], where a sibling benchmark
# named like a stdlib module (bench/queue.py) would shadow it.
sys.path.pop(0)

import argparse
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fake Slack Web API server
sys.path.insert(0, str(ROOT))

from fakes.slack import FakeSlack  # noqa: E402

SECRET = "bench-signing-secret"
PUZZLE = "palindromes"
CHANNEL = "CBENCH0001"
# The stages in the order the system reaches them; the breakdown is the step into each.
STAGES = [
    "upload sent",
    "acknowledged",
    "stored",
    "queued",
    "enqueued",
    "claimed",
    "sandbox start",
    "replication",
    "sandbox ready",
    "circuit",
    "report",
    "verdict recorded",
    "posted verdict",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signed(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={sig}"}


@dataclass
class Upload:
    user: str
    sent_wall: datetime
    sent_mono: float
    posted_mono: float | None = None
    submission_id: int | None = None
    steps: dict[str, float] = field(default_factory=dict)  # stage -> seconds since upload sent
    runtime_s: float | None = None

    @property
    def latency(self) -> float:
        assert self.posted_mono is not None
        return self.posted_mono - self.sent_mono


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    name = f"cb_bench_{uuid.uuid4().hex[:10]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class System:
    """The bot (HTTP) and one worker as subprocesses, configured through their environment."""

    def __init__(self, root: Path, fake: FakeSlack, *, db_url: str, broker_url: str) -> None:
        self.root = root
        self.fake = fake
        self.db_url = db_url
        self.port = _free_port()
        self.env = {
            **os.environ,
            "CIRCUITBOARD_DATA_DIR": str(root),
            "CIRCUITBOARD_DATABASE_URL": db_url,
            "CIRCUITBOARD_BROKER_URL": broker_url,
            "CIRCUITBOARD_SLACK_BOT_TOKEN": fake.token,
            "CIRCUITBOARD_SLACK_API_URL": fake.api_url,
            "CIRCUITBOARD_SLACK_SIGNING_SECRET": SECRET,
            "CIRCUITBOARD_VERIFICATION_SEED": "bench-latency",
            "CIRCUITBOARD_DAILY_SUBMISSION_LIMIT": "100000",
            "OMP_NUM_THREADS": "1",
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.http = httpx.Client(timeout=30)

    def start(self) -> float:
        """Launch both processes; returns the monotonic launch time."""
        launched = time.monotonic()
        cli = [sys.executable, "-c", "from bot.cli import main; main()"]
        commands = {
            "bot": [*cli, "bot", "--http", "--host", "127.0.0.1", "--port", str(self.port)],
            "worker": [*cli, "worker", "--concurrency", "1"],
        }
        for name, argv in commands.items():
            log = (self.root / f"{name}.log").open("wb")
            self.processes.append(
                subprocess.Popen(
                    argv,
                    env=self.env,
                    cwd=ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        return launched

    def wait_bot(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get(f"http://127.0.0.1:{self.port}/healthz").text == "ok":
                    return
            except httpx.TransportError:
                pass
            self._check_alive()
            time.sleep(0.05)
        raise RuntimeError(f"the bot did not answer in {timeout} s:\n{self.logs()}")

    def _check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"a process exited ({process.returncode}):\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.root.glob("*.log"))
        )

    def upload(self, user: str, source: bytes) -> Upload:
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        url = self.fake.add_file(file_id, "solution.py", source)
        event = {
            "type": "message",
            "subtype": "file_share",
            "channel": "D" + user[1:],
            "channel_type": "im",
            "user": user,
            "ts": f"{time.time():.6f}",
            "text": "",
            "files": [
                {
                    "id": file_id,
                    "name": "solution.py",
                    "size": len(source),
                    "url_private_download": url,
                    "filetype": "python",
                }
            ],
        }
        body = json.dumps(
            {
                "token": "legacy",
                "team_id": "T0FAKE",
                "api_app_id": "A0FAKE",
                "type": "event_callback",
                "event_id": f"Ev{uuid.uuid4().hex[:10]}",
                "event_time": int(time.time()),
                "event": event,
            }
        )
        headers = {"Content-Type": "application/json", **_signed(body)}
        upload = Upload(user=user, sent_wall=datetime.now(UTC), sent_mono=time.monotonic())
        response = self.http.post(
            f"http://127.0.0.1:{self.port}/slack/events", content=body.encode(), headers=headers
        )
        assert response.status_code == 200, response.text
        return upload

    def wait_verdict(self, upload: Upload, timeout: float = 300) -> None:
        channel = "D" + upload.user[1:]
        (call,) = self.fake.wait_for(
            "chat.postMessage",
            lambda c: c.args.get("channel") == channel and "Verdict for submission" in str(c.args),
            timeout=timeout,
        )
        upload.posted_mono = call.at

    def stop(self) -> None:
        self.http.close()
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def seed_round(db_url: str) -> None:
    from bot.services import rounds
    from storage.db import session_factory, session_scope, upgrade_database
    from storage.models import utcnow

    upgrade_database(db_url)
    now = utcnow()
    with session_scope(session_factory(db_url)) as session:
        rounds.plan(
            session=session,
            slug=PUZZLE,
            channel_id=CHANNEL,
            now=now,
            opens_at=now - timedelta(seconds=1),
            closes_at=now + timedelta(days=30),
        )


def read_stages(db_url: str, uploads: list[Upload]) -> None:
    """Each upload's stage marks, as seconds since the upload was sent (first attempt's only)."""
    from bot.services import timings
    from storage.db import session_factory, session_scope
    from storage.models import InboundUpload, Verdict

    with session_scope(session_factory(db_url)) as session:
        for upload in uploads:
            row = session.query(InboundUpload).filter_by(user_id=upload.user).one()
            upload.submission_id = row.submission_id
            assert upload.submission_id is not None
            for mark in timings.timeline(session=session, submission_id=upload.submission_id):
                stage = "posted verdict" if mark.stage == "posted verdict:1" else mark.stage
                if stage in STAGES and stage not in upload.steps:
                    upload.steps[stage] = (mark.at - upload.sent_wall).total_seconds()
            verdict = session.query(Verdict).filter_by(submission_id=upload.submission_id).first()
            upload.runtime_s = verdict.runtime_s if verdict is not None else None
        session.expunge_all()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_backend(name: str, *, db_url: str, broker_url: str, n: int, source: bytes) -> dict:
    fake = FakeSlack().start()
    fake.add_channel(CHANNEL, "puzzle")
    fake.invite_bot(CHANNEL)
    seed_round(db_url)
    with tempfile.TemporaryDirectory(prefix="cb-latency-") as tmp:
        system = System(Path(tmp), fake, db_url=db_url, broker_url=broker_url)
        try:
            launched = system.start()
            system.wait_bot()
            first = system.upload("U0FIRST000", source)
            system.wait_verdict(first)
            warm: list[Upload] = []
            for i in range(n):
                upload = system.upload(f"U0WARM{i:04d}", source)
                system.wait_verdict(upload)
                warm.append(upload)
            read_stages(db_url, [first, *warm])
        except BaseException:
            print(system.logs())
            raise
        finally:
            system.stop()
            fake.stop()
    assert first.posted_mono is not None
    return {
        "name": name,
        "first": first,
        "from_start": first.posted_mono - launched,
        "warm": warm,
    }


def report(result: dict) -> None:
    """Print one backend's figures (as soon as it is done: a later backend may fail)."""
    warm: list[Upload] = result["warm"]
    first: Upload = result["first"]
    latencies = [u.latency for u in warm]
    runtimes = [u.runtime_s for u in warm if u.runtime_s is not None]
    p50, p90 = statistics.median(latencies), _pct(latencies, 0.9)
    verify = statistics.median(runtimes) if runtimes else float("nan")
    print(f"\n== {result['name']} ==")
    print(
        f"first upload after start: {first.latency:.2f} s upload-to-verdict-post "
        f"({result['from_start']:.2f} s after the processes were launched)"
    )
    print(
        f"warm uploads ({len(warm)}): p50 {p50:.2f} s, p90 {p90:.2f} s upload-to-verdict-post; "
        f"the verification itself (engine runtime, in-run baseline) p50 {verify:.2f} s: "
        f"latency = {p50 / verify:.1f}x the verification, system share {p50 - verify:.2f} s"
    )
    print(f"{'step into stage':<20} {'median s':>9} {'p90 s':>7}  {'share':>6}  (first upload)")
    previous = "upload sent"
    for stage in STAGES[1:]:
        steps = [
            u.steps[stage] - u.steps.get(previous, 0.0)
            for u in warm
            if stage in u.steps and (previous in u.steps or previous == "upload sent")
        ]
        if not steps:
            continue
        cold = first.steps.get(stage)
        cold_step = (
            cold - first.steps.get(previous, 0.0)
            if cold is not None and (previous in first.steps or previous == "upload sent")
            else None
        )
        med = statistics.median(steps)
        cold_text = f"{cold_step:7.3f}" if cold_step is not None else "      -"
        print(f"{stage:<20} {med:9.3f} {_pct(steps, 0.9):7.3f}  {med / p50:6.1%}  {cold_text}")
        previous = stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=8, help="warm uploads per backend")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CIRCUITBOARD_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("CIRCUITBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/7"),
    )
    args = parser.parse_args()
    from puzzles.catalog import get_puzzle

    source = get_puzzle(PUZZLE).solution_path.read_bytes()
    print(f"load average at start: {os.getloadavg()}; {os.cpu_count()} CPUs")
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="cb-latency-db-") as tmp:
            db = Path(tmp) / "circuitboard.db"
            result = run_backend(
                "SQLite database + SQLite broker (embedded default)",
                db_url=f"sqlite:///{db}",
                broker_url=f"sqla+sqlite:///{db}",
                n=args.uploads,
                source=source,
            )
        report(result)
    if args.backend in ("postgres", "both"):
        import redis

        redis.Redis.from_url(args.redis_url).flushdb()
        with postgres_database(args.postgres_url) as url:
            result = run_backend(
                "PostgreSQL + Redis",
                db_url=url,
                broker_url=args.redis_url,
                n=args.uploads,
                source=source,
            )
        report(result)
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
