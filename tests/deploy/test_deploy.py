"""The Docker Compose deployment, run for real: compose.yaml with tests/deploy/compose.test.yaml.

Builds the image, ``docker compose up`` (PostgreSQL and Redis stand-ins, the migrations job, the
bot in HTTP mode on the host network against the fake Slack served by this test, two worker
replicas), then drives it from outside as Slack would: a round is planned with the CLI in the bot
container, users DM files through signed requests, and the test waits for the outcomes in the
database (published on 127.0.0.1) and in the fake Slack's recorded posts:

- the reference solution gets a passing verdict posted in the user's DM (the time from ``up`` to
  it is printed),
- a hostile upload (an infinite loop) fails cleanly, and the workers stay healthy,
- a worker container killed (``docker kill``) while it verifies is recovered by the other,
- ``docker compose down`` then ``up`` keeps every row and the generated verification seed.

Run by ``tests/deploy/run_deploy_test.sh`` (which starts an engine and makes the base images);
skipped with a loud reason where no Docker engine answers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.e2e_support import SIGNING_SECRET, SlackRequests, wait_for
from sqlalchemy import MetaData, create_engine, func, select
from sqlalchemy.engine import Engine

from puzzles.catalog import get_puzzle

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = [ROOT / "compose.yaml", ROOT / "tests" / "deploy" / "compose.test.yaml"]
PROJECT = "cbdeploytest"
APP_IMAGE = "circuitboard-test/app:latest"
BASE_IMAGES = ("circuitboard-test/debian:bookworm", "circuitboard-test/torch-wheels:latest")
CHANNEL = "CDEPLOY"
ALICE, MALLORY, BOB = "UALICE", "UMALLORY", "UBOB"
FINAL = ("verified", "failed", "rejected")

HOSTILE = b'''"""Hostile: never returns."""


def predict(tokens):
    while True:
        pass
'''
SLOW_DELAY_S = 25
"""The slow upload sleeps this long before defining anything, so a worker is killed mid-job."""


def _no_docker() -> str | None:
    """Why the deployment cannot run here, or None."""
    for argv, what in (
        (["docker", "info"], "no Docker engine answers (`docker info`)"),
        (["docker", "compose", "version"], "no Compose v2 (`docker compose version`)"),
    ):
        try:
            done = subprocess.run(argv, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{what}: {exc}"
        if done.returncode != 0:
            return f"{what}: {done.stderr.decode(errors='replace').strip()[-300:]}"
    for image in BASE_IMAGES:
        done = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
        if done.returncode != 0:
            return f"the local image {image} is missing (tests/deploy/prepare_images.sh makes it)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Compose:
    """``docker compose -p cbdeploytest -f compose.yaml -f compose.test.yaml ...``"""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.base = ["docker", "compose", "-p", PROJECT]
        for path in COMPOSE_FILES:
            self.base += ["-f", str(path)]

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        done = subprocess.run(
            [*self.base, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def containers(self, service: str) -> list[dict[str, Any]]:
        out = self("ps", "--all", "--format", "json", service)
        rows = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]
        if len(rows) == 1 and isinstance(rows[0], list):  # older compose: one JSON array
            rows = rows[0]
        return rows


def _health(container: str) -> str:
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", container],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _rows(engine: Engine) -> dict[str, dict[str, str]]:
    """Every row of every table, by table name and primary key (all columns as JSON)."""
    meta = MetaData()
    meta.reflect(engine)
    tables: dict[str, dict[str, str]] = {}
    with engine.connect() as conn:
        for name, table in meta.tables.items():
            key = [c.name for c in table.primary_key.columns] or [c.name for c in table.columns]
            tables[name] = {
                json.dumps([row[k] for k in key], default=str): json.dumps(
                    dict(row), default=str, sort_keys=True
                )
                for row in conn.execute(select(table)).mappings()
            }
    return tables


def _submissions(engine: Engine) -> dict[str, dict[str, Any]]:
    meta = MetaData()
    meta.reflect(engine, only=["submissions"])
    table = meta.tables["submissions"]
    with engine.connect() as conn:
        return {row.user_id: row._asdict() for row in conn.execute(select(table))}


def _texts(call: Any) -> str:
    parts = [str(call.args.get("text") or "")]
    for block in call.args.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(str(text.get("text", "")))
    return "\n".join(parts)


def _seed(volume: str) -> str:
    done = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{volume}:/data:ro", BASE_IMAGES[0]]
        + ["cat", "/data/verification_seed"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_compose_deployment_verifies_recovers_and_keeps_its_data(fake_slack, tmp_path) -> None:
    reason = _no_docker()
    if reason is not None:
        message = f"DOCKER DEPLOYMENT NOT TESTED: {reason}"
        if os.environ.get("CB_TEST_REQUIRE_DOCKER"):
            pytest.fail(message)
        pytest.skip(message)
    pg_port, redis_port, bot_port = _free_port(), _free_port(), _free_port()
    password = uuid.uuid4().hex
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CIRCUITBOARD_", "POSTGRES_", "COMPOSE_"))
    }
    env.update(
        POSTGRES_PASSWORD=password,
        CB_TEST_SLACK_TOKEN=fake_slack.token,
        CB_TEST_SLACK_API_URL=fake_slack.api_url,
        CB_TEST_SIGNING_SECRET=SIGNING_SECRET,
        CB_TEST_PG_PORT=str(pg_port),
        CB_TEST_REDIS_PORT=str(redis_port),
        CB_TEST_BOT_PORT=str(bot_port),
    )
    compose = Compose(env)
    compose("down", "--volumes", "--remove-orphans")  # what an interrupted run left
    started = time.monotonic()
    compose("build", timeout=1800)
    build_s = time.monotonic() - started
    size = int(
        subprocess.check_output(["docker", "image", "inspect", APP_IMAGE, "-f", "{{.Size}}"])
    )
    print(
        f"\nimage {APP_IMAGE}: {size / 1e9:.2f} GB, built in {build_s:.0f} s (cached layers count)"
    )

    db = create_engine(
        f"postgresql+psycopg://circuitboard:{password}@127.0.0.1:{pg_port}/circuitboard",
        pool_pre_ping=True,
    )
    http = httpx.Client(timeout=30)
    slack = SlackRequests(
        url=f"http://127.0.0.1:{bot_port}/slack/events", fake=fake_slack, http=http
    )
    try:
        up_at = time.monotonic()
        compose("up", "--detach")
        _wait_for_bot(compose, http, bot_port)
        workers = [c["Name"] for c in compose.containers("worker")]
        assert len(workers) == 2, workers
        seed = _seed(f"{PROJECT}_data")
        assert len(seed) == 64, "the migrate job did not generate the verification seed"

        compose(
            "exec", "-T", "bot", "circuitboard", "rounds", "plan", "--puzzle", "palindromes",
            "--channel", CHANNEL, "--opens", "now", "--closes", "in 30 days", "--no-hints",
        )  # fmt: skip
        fake_slack.wait_for(
            "chat.postMessage", lambda c: c.args.get("channel") == CHANNEL, timeout=120
        )

        # 1. The reference solution: a passing verdict in the user's DM.
        reference = get_puzzle("palindromes").solution_path.read_bytes()
        slack.share_file(user=ALICE, file_id="F1", name="solution.py", content=reference, ts="1.1")
        verdict = _wait_verdict(fake_slack, ALICE, timeout=900)
        first_verdict_s = time.monotonic() - up_at
        assert "passed :tada:" in _texts(verdict), _texts(verdict)
        print(f"from `docker compose up` to the first verdict: {first_verdict_s:.0f} s")
        _wait_for_workers(compose)

        # 2. A hostile upload and 3. a slow one whose worker is killed mid-job, side by side.
        slack.share_file(user=MALLORY, file_id="F2", name="evil.py", content=HOSTILE, ts="2.1")
        slow = f"import time\n\ntime.sleep({SLOW_DELAY_S})\n".encode() + reference
        slack.share_file(user=BOB, file_id="F3", name="slow.py", content=slow, ts="3.1")

        def bob_running() -> str | None:
            row = _submissions(db).get(BOB)
            return row["lease_owner"] if row and row["status"] == "running" else None

        owner = wait_for(bob_running, timeout=600, what="a worker to start the slow upload")
        host = owner.split("/")[0]  # the lease owner is hostname/pid/...: the container id
        (victim,) = [c for c in compose.containers("worker") if c["ID"].startswith(host)]
        subprocess.run(["docker", "kill", victim["ID"]], check=True, capture_output=True)
        print(f"killed {victim['Name']} while it verified submission of {BOB}")

        rows = wait_for(
            lambda: (
                (subs := _submissions(db))
                and all(subs.get(u, {}).get("status") in FINAL for u in (MALLORY, BOB))
                and subs
            ),
            timeout=900,
            what="the hostile and the recovered uploads to finish",
            every=1.0,
        )
        assert rows[MALLORY]["status"] in ("rejected", "failed"), rows[MALLORY]
        assert "did not finish within 45 s" in (rows[MALLORY]["message"] or ""), rows[MALLORY]
        assert rows[BOB]["status"] == "verified", rows[BOB]
        assert rows[BOB]["attempts"] == 2, rows[BOB]  # the killed attempt, then the survivor's
        assert "passed :tada:" in _texts(_wait_verdict(fake_slack, BOB, timeout=120))
        assert _health(victim["ID"]).startswith("exited"), "the killed worker came back"
        (survivor,) = [c["ID"] for c in compose.containers("worker") if c["ID"] != victim["ID"]]
        wait_for(
            lambda: _health(survivor) == "running healthy",
            timeout=300,
            what="the surviving worker to stay healthy (database and sandbox self-check)",
        )
        refusal = fake_slack.wait_for(
            "chat.postMessage",
            lambda c: c.args.get("channel") == "D" + MALLORY[1:] and "45 s" in _texts(c),
            timeout=120,
        )
        assert refusal

        # 4. down, then up: every row (and the generated seed) is still there.
        before = _rows(db)
        db.dispose()
        compose("down")
        compose("up", "--detach")
        _wait_for_bot(compose, http, bot_port)
        _wait_for_workers(compose)
        after = _rows(db)
        lost = {name: set(rows) - set(after.get(name, {})) for name, rows in before.items()}
        assert not any(lost.values()), {k: v for k, v in lost.items() if v}
        assert sum(len(r) for r in before.values()) > 0
        # what users and admins see is unchanged (the scheduler's own rows may move on)
        for name in ("rounds", "submissions", "verdicts", "blobs"):
            if name in before:
                assert after[name] == before[name], name
        with db.connect() as conn:
            meta = MetaData()
            meta.reflect(conn, only=["submissions"])
            count = conn.scalar(select(func.count()).select_from(meta.tables["submissions"]))
        assert count == 3
        assert _seed(f"{PROJECT}_data") == seed
        print(f"down + up kept all {sum(len(r) for r in before.values())} rows")
    except BaseException:
        print(compose("logs", "--no-color", "--tail", "150", check=False))
        raise
    finally:
        http.close()
        db.dispose()
        if not os.environ.get("CB_TEST_KEEP_DEPLOYMENT"):
            compose("down", "--volumes", "--remove-orphans", check=False)


def _wait_for_bot(compose: Compose, http: httpx.Client, bot_port: int) -> None:
    """The migrate job succeeded and the bot answers /healthz."""

    def bot_ok() -> bool:
        migrate = compose.containers("migrate")
        if migrate and migrate[0].get("State") == "exited" and migrate[0].get("ExitCode"):
            raise AssertionError(f"the migrate job failed:\n{compose('logs', 'migrate')}")
        try:
            return http.get(f"http://127.0.0.1:{bot_port}/healthz").text == "ok"
        except httpx.TransportError:
            return False

    wait_for(bot_ok, timeout=600, what="the bot's HTTP server", every=1.0)


def _wait_for_workers(compose: Compose) -> None:
    """Both worker replicas report healthy: database reachable and the sandbox self-check passes."""

    def workers_healthy() -> bool:
        states = [_health(c["ID"]) for c in compose.containers("worker")]
        if any(s.endswith("unhealthy") or s.startswith("exited") for s in states):
            raise AssertionError(f"workers {states}:\n{compose('logs', 'worker')}")
        return len(states) == 2 and all(s == "running healthy" for s in states)

    wait_for(workers_healthy, timeout=600, what="two healthy workers", every=2.0)


def _wait_verdict(fake_slack: Any, user: str, *, timeout: float) -> Any:
    (call,) = fake_slack.wait_for(
        "chat.postMessage",
        lambda c: c.args.get("channel") == "D" + user[1:] and "Verdict for submission" in _texts(c),
        timeout=timeout,
    )
    return call
