"""Stage timings: a DM upload's way to its verdict posts is recorded, shown by the CLI, in the JSON.

The upload goes through the signed HTTP app, the verdict comes from the real job body
(``bot.worker.verification.run_verification``) on the catalog's reference solution, and the posts from the outbox.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from bot.cli import app as cli
from bot.services import timings
from bot.settings import get_settings
from puzzles.catalog import get_puzzle
from storage.db import session_scope
from storage.models import OutboxMessage, OutboxStatus, Submission

DM = "D0USER0001"
ORDER = [
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
]


def _upload(slack_app) -> int:
    source = get_puzzle("palindromes").solution_path.read_bytes()
    url = slack_app.fake.add_file("F1", "solution.py", source)
    event = {
        "type": "message",
        "subtype": "file_share",
        "channel": DM,
        "channel_type": "im",
        "user": "U0USER0001",
        "ts": "1700000000.000100",
        "text": "",
        "files": [{"id": "F1", "name": "solution.py", "size": len(source)}],
    }
    event["files"][0]["url_private_download"] = url
    assert slack_app.event(event, event_id="Ev1").status_code == 200
    slack_app.fake.wait_for("chat.postMessage", lambda c: c.args.get("thread_ts") == event["ts"])
    with session_scope(slack_app.factory) as session:
        (row,) = session.query(Submission).all()
        return row.id


def _drain(slack_app, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        slack_app.flush()
        with session_scope(slack_app.factory) as session:
            pending = session.query(OutboxMessage).filter(
                OutboxMessage.status == OutboxStatus.PENDING
            )
            if pending.count() == 0:
                return
        time.sleep(0.1)
    raise AssertionError("the outbox did not drain")


def test_every_stage_from_ack_to_verdict_post_is_recorded_and_shown(
    slack_app, open_round, monkeypatch
) -> None:
    from bot.app import dispatcher_of
    from bot.worker import seeds, sender
    from bot.worker.verification import run_verification

    sid = _upload(slack_app)
    # From here only the worker's own sender can post, and only when woken after its commits.
    dispatcher_of(slack_app.app).stop()
    monkeypatch.setattr(sender, "WORKER_OUTBOX_INTERVAL_S", 3600.0)
    settings = slack_app.app._circuitboard["settings"].model_copy(
        update={"verify_overrides": {"heldout_size": 200, "circuit_size": 100}}
    )
    published = datetime.now(UTC)
    assert run_verification(sid, settings=settings, enqueued_at=published) == "verified"
    # the hard set is the round's (mined once per round and process), the held-out draw the
    # submission's own
    from puzzles.verify import hardset

    with session_scope(slack_app.factory) as session:
        round_id = session.get(Submission, sid).round_id
    round_seed = seeds.hard_set_seed(settings, "palindromes", round_id)
    assert any(key[-3] == round_seed for key in hardset._CACHE)
    assert round_seed != seeds.secret_seed(
        settings, "palindromes", salt=f"round:{round_id}:submission:{sid}"
    )
    slack_app.fake.wait_for(
        "chat.postMessage", lambda c: "Verdict for submission" in str(c.args), timeout=60
    )
    _drain(slack_app)

    with session_scope(slack_app.factory) as session:
        marks = timings.timeline(session=session, submission_id=sid)
    stages = [m.stage for m in marks]
    # Each stage once, in the order the system reaches them (one attempt, nothing retried).
    assert [s for s in stages if s in ORDER] == ORDER
    by_stage = {m.stage: m for m in marks}
    assert by_stage["enqueued"].at == published
    assert {by_stage[s].attempt for s in ORDER[4:]} == {1}
    assert "posted verdict:1" in stages and "posted verdict:1:plot" in stages
    assert "posted status" in stages
    assert by_stage["posted verdict:1"].at >= by_stage["verdict recorded"].at
    assert all(a.at <= b.at for a, b in zip(marks, marks[1:], strict=False))
    assert marks[-1].at - marks[0].at < timedelta(minutes=5)

    monkeypatch.setenv("CIRCUITBOARD_DATABASE_URL", settings.db_url)
    get_settings.cache_clear()
    runner = CliRunner()
    shown = runner.invoke(cli, ["submissions", "show", str(sid)])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    start = lines.index(next(line for line in lines if line.strip().startswith("timings")))
    printed = [line.split(")", 1)[1].strip() for line in lines[start + 1 :]]
    assert [p for p in printed if p.split(" (attempt")[0] in ORDER][0] == "acknowledged"
    assert "verdict recorded (attempt 1)" in printed and "posted verdict:1" in printed

    raw = runner.invoke(cli, ["submissions", "show", str(sid), "--json"])
    assert raw.exit_code == 0, raw.output
    doc = json.loads(raw.output)
    (verdict,) = doc["verdicts"]
    assert verdict["passed"] is True and "replication" in verdict["scores"]["checks"]
    verdict_stages = [t["stage"] for t in verdict["timings"]]
    assert [s for s in verdict_stages if s in ORDER] == ORDER
    assert doc["timings"][0] == {**doc["timings"][0], "stage": "acknowledged", "after_s": 0.0}
    last = doc["timings"][-1]["after_s"]
    assert last == round((marks[-1].at - marks[0].at).total_seconds(), 3)


def test_a_failed_run_is_timed_too(slack_app, open_round) -> None:
    from bot.services import leases

    sid = _upload(slack_app)
    with session_scope(slack_app.factory) as session:
        attempt = leases.claim(session=session, submission_id=sid, owner="w1")
        assert leases.fail(
            session=session, submission_id=sid, owner="w1", attempt=attempt, message="time limit"
        )
    with session_scope(slack_app.factory) as session:
        marks = timings.timeline(session=session, submission_id=sid)
    stages = [m.stage for m in marks if not m.stage.startswith("posted")]
    assert stages[:5] == ["acknowledged", "stored", "queued", "claimed", "failed"]
