"""The console drives the same services and views as Slack, rendered as text."""

from __future__ import annotations

import io
from datetime import timedelta

from bot.console import Console
from bot.settings import Settings
from puzzles.catalog import get_puzzle
from storage.db import session_factory, session_scope, upgrade_database
from storage.models import PuzzleVersion, Round, RoundStatus, utcnow


def test_console_cycle_puzzle_submit_verdict(sqlite_url, tmp_path):
    upgrade_database(sqlite_url)
    settings = Settings(
        database_url=sqlite_url,
        data_dir=tmp_path / "data",
        verification_seed="circuitboard-slack-tests",  # one held-out set: verdicts reproducible
    )
    factory = session_factory(sqlite_url)
    now = utcnow()
    with session_scope(factory) as session:
        version = PuzzleVersion(
            slug="palindromes", version=1, weights_sha256="0" * 64, title="Palindromes"
        )
        session.add(
            Round(
                puzzle_version=version,
                channel_id="C0ROUND001",
                opens_at=now - timedelta(days=1),
                closes_at=now + timedelta(days=3),
                status=RoundStatus.OPEN,
            )
        )
    out = io.StringIO()
    console = Console(settings, out=out, session_factory=factory)
    assert console.handle("/puzzle")
    assert "Puzzle of the month: Palindromes" in out.getvalue()
    console.handle("/puzzle bogus")
    assert "I don't know `bogus`" in out.getvalue()
    console.handle("/puzzle admin list")
    assert "Admins: @UCONSOLE" in out.getvalue()

    solution = tmp_path / "solution.py"
    solution.write_bytes(get_puzzle("palindromes").solution_path.read_bytes())
    submission_id = console.handle(f"submit {solution}") and 1
    console.flush()
    assert "[DM] circuitboard:" in out.getvalue() and "Submission #1" in out.getvalue()

    from bot.worker.verification import run_verification

    assert run_verification(submission_id, settings=settings) == "verified"
    for _ in range(3):
        console.flush()
    text = out.getvalue()
    assert "(updated)" in text and "running" in text
    assert "Verdict for submission #1" in text
    assert "[DM] (file)" in text and "submission-1-attempt-1.png" in text  # the plot, in the DM
    assert "[#C0ROUND001" in text and "@UCONSOLE verified a solution" in text
    console.handle("home")
    assert "[App Home]" not in text  # rendered just now, after the snapshot
    assert "Admin panel" in out.getvalue()
    assert not console.handle("quit")
