"""The console as a newcomer meets it: roles, credits in an open round, bad files, the prompt."""

from __future__ import annotations

import io
import sys
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from bot.console import Console
from bot.settings import Settings
from storage.db import session_factory, session_scope, upgrade_database
from storage.models import AuditLog, Credit, PuzzleVersion, Round, RoundStatus, Submission, utcnow


@pytest.fixture
def setup(sqlite_url, tmp_path):
    upgrade_database(sqlite_url)
    settings = Settings(database_url=sqlite_url, data_dir=tmp_path / "data")
    factory = session_factory(sqlite_url)

    # A lock held for 30 s would be a hang; held for 0.2 s, it fails the test at once.
    @event.listens_for(factory.kw["bind"], "connect")
    def _short_busy_timeout(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA busy_timeout=200")

    now = utcnow()
    with session_scope(factory) as session:
        version = PuzzleVersion(
            slug="palindromes", version=1, weights_sha256="0" * 64, title="Palindromes"
        )
        session.add(
            Round(
                puzzle_version=version,
                channel_id="CROUND",
                opens_at=now - timedelta(days=1),
                closes_at=now + timedelta(days=3),
                status=RoundStatus.OPEN,
            )
        )
    return settings, factory


def test_console_admin_awards_a_credit_in_an_open_round(setup):
    """The credit's own admin check uses the console's settings, not the process's."""
    settings, factory = setup
    out = io.StringIO()
    console = Console(settings, out=out, session_factory=factory)  # UCONSOLE, admin
    console.handle('/puzzle admin credit @UCONSOLE best "x"')
    assert "Awarded best solution to @UCONSOLE for round #1." in out.getvalue(), out.getvalue()
    with session_scope(factory) as session:
        assert session.scalar(select(func.count()).select_from(Credit)) == 1


def test_a_refused_credit_is_audited_after_the_callers_transaction(setup):
    """A refusal inside a transaction that holds SQLite's write lock neither waits nor is lost."""
    from bot.services import admins, credits

    settings, factory = setup
    with pytest.raises(credits.NotAllowed), session_scope(factory) as session:
        admins.audit(session=session, actor_id="UX", action="admin.credit", allowed=True)
        credits.award(
            session=session,
            actor_id="UX",
            round_id=1,
            user_id="UX",
            kind="best",
            configured_admins=[],
        )
    with session_scope(factory) as session:
        refused = session.scalars(select(AuditLog).where(AuditLog.allowed.is_(False))).all()
        assert [(a.actor_id, a.action) for a in refused] == [("UX", "credit.award")]


def test_as_a_participant_admin_commands_are_refused_and_help_has_no_admin_part(setup):
    settings, factory = setup
    out = io.StringIO()
    console = Console(settings, out=out, user_id="UPART", session_factory=factory, admin=False)
    assert not console.is_admin
    console.handle("/puzzle help")
    assert "/puzzle admin" not in out.getvalue()
    console.handle("/puzzle admin list")
    assert "Only puzzle admins can do that" in out.getvalue()
    admin = Console(settings, out=io.StringIO(), user_id="UBOSS", session_factory=factory)
    assert admin.is_admin


def test_console_flags_participant_by_default_with_as(monkeypatch):
    from typer.testing import CliRunner

    import bot.console
    from bot.cli import app

    seen = []
    monkeypatch.setattr(bot.console, "run_console", lambda _s, **kw: seen.append(kw))
    runner = CliRunner()
    for args in (["console"], ["console", "--as", "U1"], ["console", "--as", "U1", "--admin"]):
        assert runner.invoke(app, [*args, "--no-worker"]).exit_code == 0
    assert [(kw["user_id"], kw["admin"]) for kw in seen] == [
        ("UCONSOLE", True),
        ("U1", False),
        ("U1", True),
    ]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("broken.py", b"def predict(tokens:\n    return tokens\n", "Syntax error at line 1"),
        ("latin1.py", b"# caf\xe9\nCIRCUIT = []\n", "not UTF-8"),
        ("empty.ipynb", b"{not json", "not valid JSON"),
    ],
)
def test_unreadable_files_are_refused_at_upload_and_do_not_count(
    setup, tmp_path, name, content, expected
):
    settings, factory = setup
    out = io.StringIO()
    console = Console(settings, out=out, session_factory=factory)
    path = tmp_path / name
    path.write_bytes(content)
    assert console.submit(path) is None
    console.flush()
    shown = out.getvalue()
    assert expected in shown and "does not count as a submission" in shown, shown
    with session_scope(factory) as session:
        assert session.scalar(select(func.count()).select_from(Submission)) == 0


def test_prompt_is_redrawn_under_what_the_outbox_prints(setup):
    """On a terminal the console reads with prompt_toolkit under patch_stdout."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    settings, factory = setup
    console = Console(settings, out=sys.__stdout__, session_factory=factory)
    writers = []
    handled = console.handle

    def spy(line):
        writers.append(type(console.client.out).__name__)
        return handled(line)

    console.handle = spy
    with create_pipe_input() as pipe:
        pipe.send_text("help\nquit\n")
        console._terminal_repl(pt_input=pipe, pt_output=DummyOutput())
    assert writers == ["StdoutProxy", "StdoutProxy"]
    assert console.out is sys.__stdout__


def test_quit_says_what_it_stops(setup):
    settings, factory = setup
    out = io.StringIO()
    console = Console(settings, out=out, session_factory=factory)

    class Worker:
        pid = 4242
        stopped = False

        def stop(self):
            Worker.stopped = True

    console.shutdown(Worker())
    assert Worker.stopped
    lines = out.getvalue().splitlines()
    assert lines == [
        "stopping: sending what the outbox still holds",
        "stopping: the verification worker (pid 4242)",
        "stopped",
    ]
