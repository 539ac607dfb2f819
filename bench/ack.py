"""Ack latency of the circuitboard HTTP app vs a bare Bolt app, under 50 concurrent `/puzzle`s.

Both apps run the same way (a server subprocess on 127.0.0.1, the same threaded HTTP server, the
same signing secret, talking to the same local fake Slack Web API) and receive the same signed
slash commands; the bare app's listener only acks. The latency is from sending the request to
receiving Slack's required HTTP 200 (the ack). Prints p50/p99 for each and their ratio
(goal: <= 1.2x).

    python bench/ack.py [--concurrency 50] [--rounds 8]
"""

from __future__ import annotations

import sys

# Run as `python bench/ack.py`, this folder is sys.path[0], where a sibling benchmark
# named like a stdlib module (bench/queue.py) would shadow it.
sys.path.pop(0)

import argparse
import hashlib
import hmac
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fake Slack Web API server

SECRET = "bench-signing-secret"
SUBCOMMANDS = ["", "me", "hints", "help", "leaderboard"]


def serve(kind: str, port: int, api_url: str, db_url: str) -> None:
    """Run one app until killed (in a subprocess)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    from bot.app import build_app, make_http_server
    from bot.settings import Settings

    if kind == "ours":
        settings = Settings(
            database_url=db_url,
            slack_bot_token="xoxb-fake-bot-token",
            slack_signing_secret=SECRET,
            slack_api_url=api_url,
        )
        app = build_app(settings)
    else:
        from slack_bolt import App
        from slack_sdk import WebClient

        app = App(
            signing_secret=SECRET,
            token="xoxb-fake-bot-token",
            client=WebClient(token="xoxb-fake-bot-token", base_url=api_url),
            token_verification_enabled=False,
        )

        @app.command("/puzzle")
        def nothing(ack):  # type: ignore[no-untyped-def]
            ack()

    server = make_http_server(app, host="127.0.0.1", port=port)
    server.serve_forever()


def _signed(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={sig}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def _command(i: int, response_url: str) -> str:
    return urlencode(
        {
            "command": "/puzzle",
            "text": SUBCOMMANDS[i % len(SUBCOMMANDS)],
            "user_id": f"U{i % 20:04d}",
            "channel_id": "C0BENCH",
            "team_id": "T0FAKE",
            "response_url": response_url,
            "trigger_id": uuid.uuid4().hex,
        }
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(url: str, response_url: str, *, concurrency: int, rounds: int) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    with httpx.Client(timeout=30, limits=limits) as client:

        def one(i: int) -> None:
            body = _command(i, response_url)
            headers = _signed(body)
            start = time.perf_counter()
            response = client.post(url, content=body, headers=headers)
            elapsed = time.perf_counter() - start
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            with lock:
                latencies.append(elapsed)

        with ThreadPoolExecutor(concurrency) as pool:
            for r in range(rounds):
                list(pool.map(one, range(r * concurrency, (r + 1) * concurrency)))
                time.sleep(0.3)  # let post-ack work settle, like bursts in real traffic
    return latencies


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--serve", choices=["ours", "bare", "fake"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--api-url")
    parser.add_argument("--db-url")
    args = parser.parse_args()
    if args.serve == "fake":
        from fakes.slack import FakeSlack

        FakeSlack().start(port=args.port)
        threading.Event().wait()
    if args.serve:
        serve(args.serve, args.port, args.api_url, args.db_url)
        return

    from storage.db import upgrade_database

    # The fake Slack runs in its own process: in ours, it would steal the client's CPU time
    # answering our app's response_url posts and bias the comparison.
    fake_port = _free_port()
    fake = subprocess.Popen([sys.executable, __file__, "--serve", "fake", "--port", str(fake_port)])
    fake_base = f"http://127.0.0.1:{fake_port}"
    api_url, response_url = f"{fake_base}/api/", f"{fake_base}/respond/bench"
    tmp = Path(tempfile.mkdtemp(prefix="cb-bench-"))
    db_url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade_database(db_url)
    _seed_round(db_url)
    env = {**os.environ, "CIRCUITBOARD_DATA_DIR": str(tmp / "data")}
    results: dict[str, list[float]] = {}
    try:
        for kind in ("bare", "ours", "bare", "ours"):  # interleaved: drift hits both alike
            port = _free_port()
            proc = subprocess.Popen(
                [sys.executable, __file__, "--serve", kind, "--port", str(port)]
                + ["--api-url", api_url, "--db-url", db_url],
                env=env,
                cwd=ROOT,
            )
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_ready(base)
                url = f"{base}/slack/events"
                measure(url, response_url, concurrency=args.concurrency, rounds=1)  # warm
                results.setdefault(kind, []).extend(
                    measure(url, response_url, concurrency=args.concurrency, rounds=args.rounds)
                )
            finally:
                proc.terminate()
                proc.wait(10)
    finally:
        fake.terminate()
        fake.wait(10)
    rows = []
    for kind in ("bare", "ours"):
        values = results[kind]
        rows.append(
            (kind, _pct(values, 0.5), _pct(values, 0.99), statistics.mean(values), len(values))
        )
    print(f"ack latency, {args.concurrency} concurrent /puzzle commands ({args.rounds} bursts x 2)")
    for kind, p50, p99, mean, n in rows:
        print(
            f"  {kind:5s} p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms  mean {mean * 1000:7.2f} ms  n={n}"
        )
    (_, b50, b99, _, _), (_, o50, o99, _, _) = rows
    print(f"ratio ours/bare: p50 {o50 / b50:.2f}x  p99 {o99 / b99:.2f}x  (goal <= 1.2x)")


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def _seed_round(db_url: str) -> None:
    from datetime import timedelta

    from storage.db import session_factory, session_scope
    from storage.models import PuzzleVersion, Round, RoundStatus, utcnow

    now = utcnow()
    with session_scope(session_factory(db_url)) as session:
        version = PuzzleVersion(
            slug="palindromes", version=1, weights_sha256="0" * 64, title="Palindromes"
        )
        session.add(
            Round(
                puzzle_version=version,
                channel_id="CROUND",
                opens_at=now - timedelta(days=1),
                closes_at=now + timedelta(days=10),
                status=RoundStatus.OPEN,
            )
        )


if __name__ == "__main__":
    main()
