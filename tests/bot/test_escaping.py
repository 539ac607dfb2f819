"""Text a submission wrote is inert wherever it is shown: Slack, terminals, the Markdown export."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bot.cli import app
from bot.settings import get_settings
from bot.views.escape import markdown, mrkdwn, report_mrkdwn, terminal
from bot.views.submissions import build_status_message, build_verdict_message
from bot.views.text import render
from bot.worker.seeds import secret_seed
from storage.models import Submission, SubmissionStatus, Verdict

HOSTILE = (
    "\x1b]0;owned\x07\x1b[31mred\x1b[0m\r\x9b2J \u202egnp.exe "
    "<!channel> <@U123> <http://evil.example|https://docs.example> [docs](http://evil.example) "
    "&lt;!here&gt; ![img](http://track.example/p.png) <img src=x onerror=alert(1)>"
)


def _slack_text(payload: dict) -> str:
    return json.dumps(payload)


def test_mrkdwn_leaves_no_mention_link_or_entity_live() -> None:
    text = mrkdwn(HOSTILE)
    assert "<" not in text and ">" not in text
    assert "&lt;!channel&gt;" in text and "&amp;lt;!here&amp;gt;" in text


def test_a_verdict_report_cannot_ping_or_disguise_links_in_slack() -> None:
    report = f"**palindromes: FAILED**\n\nOutput of your code:\n```\n{HOSTILE}\n```"
    submission = Submission(id=7, filename="<!everyone>.py", status=SubmissionStatus.VERIFIED)
    verdict = Verdict(attempt=1, passed=False, checks_passed=0, report_md=report, runtime_s=1.0)
    payload = build_verdict_message(submission, verdict)
    text = _slack_text(payload)
    for live in ("<!channel>", "<@U123>", "<http://evil.example|", "<img"):
        assert live not in text
    assert "*palindromes: FAILED*" in text  # our own formatting still works
    assert "[docs](http://evil.example)" in report_mrkdwn(report)  # shown as typed, not a link


def test_failure_messages_and_file_names_are_escaped_in_slack() -> None:
    submission = Submission(
        id=8,
        filename="a`<!channel>`.py",
        status=SubmissionStatus.REJECTED,
        message="predict raised <!here> <http://x|y>",
        attempts=1,
    )
    text = _slack_text(build_status_message(submission))
    assert "<!here>" not in text and "<http://x|y>" not in text and "<!channel>" not in text
    # the console renders the same views in a terminal: readable, and without escape codes
    submission.message = HOSTILE
    shown = render(build_status_message(submission))
    assert "<!channel>" in shown and "\x1b" not in shown and "\x07" not in shown


def test_terminal_text_shows_control_characters_instead_of_obeying_them() -> None:
    shown = terminal(HOSTILE + "\nnext line\ttab")
    for raw in ("\x1b", "\x07", "\r", "\x9b", "\u202e"):
        assert raw not in shown
    assert "\\x1b]0;owned\\x07" in shown and "\\u202e" in shown
    assert "\nnext line\ttab" in shown


def test_markdown_export_text_has_no_live_link_image_or_html() -> None:
    text = markdown(HOSTILE)
    assert "<img" not in text and "&lt;img" in text
    assert "\\[docs\\]" in text and "\\!\\[img\\]" in text and "\x1b" not in text


def test_cli_verify_prints_a_report_without_escape_codes(tmp_path) -> None:
    source = tmp_path / "solution.py"
    source.write_text(f"print({HOSTILE!r})\nCIRCUIT = ['L0H0']\n")
    result = CliRunner().invoke(app, ["verify", str(source), "--puzzle", "palindromes"])
    assert result.exit_code in (0, 1), result.output
    assert "Output of your code" in result.output
    assert "\x1b" not in result.output and "\\x1b]0;owned" in result.output


def test_cli_verify_refuses_a_deeply_nested_notebook_with_exit_2(tmp_path) -> None:
    notebook = tmp_path / "deep.ipynb"
    notebook.write_text('{"cells": ' + "[" * 5000 + "]" * 5000 + "}")
    result = CliRunner().invoke(app, ["verify", str(notebook), "--puzzle", "palindromes"])
    assert result.exit_code == 2, result.output
    assert "nests 5001 levels deep" in result.output
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )


def test_cli_sandbox_check_is_a_health_check(tmp_path, monkeypatch) -> None:
    import shutil

    if shutil.which("bwrap"):
        ok = CliRunner().invoke(app, ["sandbox", "check"])
        assert ok.exit_code == 0, ok.output
        assert "sandbox: ok" in ok.output
    monkeypatch.setenv("PATH", str(tmp_path))
    broken = CliRunner().invoke(app, ["sandbox", "check"])
    assert broken.exit_code == 1
    assert "bubblewrap (bwrap) is not installed" in broken.output


def test_each_submission_gets_its_own_secret_held_out_draw() -> None:
    settings = get_settings()
    first = secret_seed(settings, "palindromes", salt="round:1:submission:1")
    assert first == secret_seed(settings, "palindromes", salt="round:1:submission:1")
    others = {
        secret_seed(settings, "palindromes", salt="round:1:submission:2"),
        secret_seed(settings, "palindromes", salt="round:2:submission:1"),
        secret_seed(settings, "parity", salt="round:1:submission:1"),
    }
    assert first not in others and len(others) == 3
