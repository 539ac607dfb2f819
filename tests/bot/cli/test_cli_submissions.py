"""``circuitboard submissions list|show|reverify|sweep`` on the embedded SQLite database."""

from __future__ import annotations

from support.queue import seed_round, solution
from typer.testing import CliRunner

from bot.cli import app
from bot.services import leases, submissions
from bot.settings import get_settings
from storage.db import make_engine, session_factory, session_scope, upgrade_database


def test_list_show_reverify_and_sweep() -> None:
    settings = get_settings()
    upgrade_database(settings.db_url)
    factory = session_factory(make_engine(settings.db_url))
    round_id = seed_round(factory)
    with session_scope(factory) as session:
        sid = submissions.create_submission(
            session=session,
            round_id=round_id,
            user_id="U1",
            filename="solution.py",
            content=solution(),
        ).id
    with session_scope(factory) as session:
        attempt = leases.claim(session=session, submission_id=sid, owner="w1")
        leases.record_verdict(
            session=session,
            submission_id=sid,
            owner="w1",
            attempt=attempt,
            outcome=leases.Outcome(passed=True, checks_passed=2, public_score=0.995),
        )
    runner = CliRunner()

    listed = runner.invoke(app, ["submissions", "list", "--round", str(round_id)])
    assert listed.exit_code == 0, listed.output
    assert f"#{sid}" in listed.output and "verified" in listed.output

    shown = runner.invoke(app, ["submissions", "show", str(sid)])
    assert shown.exit_code == 0, shown.output
    assert "verdict attempt 1: passed, 2 checks, score 0.995" in shown.output

    again = runner.invoke(app, ["submissions", "reverify", "--submission", str(sid)])
    assert again.exit_code == 0, again.output
    assert f"#{sid} is queued" in again.output
    whole_round = runner.invoke(app, ["submissions", "reverify", "--round", str(round_id)])
    assert "0 submissions" in whole_round.output  # it is already waiting

    assert runner.invoke(app, ["submissions", "reverify"]).exit_code != 0
    assert runner.invoke(app, ["submissions", "show", "999"]).exit_code == 1
    assert runner.invoke(app, ["submissions", "list", "--status", "bogus"]).exit_code != 0

    swept = runner.invoke(app, ["submissions", "sweep"])
    assert swept.exit_code == 0, swept.output
    assert "requeued 0" in swept.output
