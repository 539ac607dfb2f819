"""Slack markup as a terminal shows it: no `:x:`, `**`, `<!date^...>` or `<#C...>` left over."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.views.announcements import slack_date
from bot.views.text import mrkdwn_to_text, render

BERLIN = ZoneInfo("Europe/Berlin")


def test_dates_resolve_in_the_given_zone_and_the_local_one_by_default():
    when = datetime(2026, 12, 8, 16, 0, tzinfo=UTC)
    assert (
        mrkdwn_to_text(f"closes {slack_date(when)}", tz=BERLIN) == "closes Tue 8 Dec 2026 17:00 CET"
    )
    assert mrkdwn_to_text(slack_date(when, with_time=False), tz=BERLIN) == "Tue 8 Dec 2026"
    local = when.astimezone()
    assert mrkdwn_to_text(slack_date(when)).endswith(f"{local:%H:%M %Z}")


def test_emoji_mentions_links_and_emphasis_become_text():
    text = (
        ":x: **palindromes: FAILED** :white_check_mark: *bold* _italic_ ~gone~ :tada: "
        "<@U1|ada> in <#C0123|puzzles> and <#C0456>, <!here>, "
        "<https://example.org/w|write-up> <https://example.org/raw> :not_an_emoji_name:"
    )
    assert mrkdwn_to_text(text) == (
        "❌ palindromes: FAILED ✅ bold italic gone 🎉 @ada in #puzzles and #C0456, @here, "
        "write-up (https://example.org/w) https://example.org/raw :not_an_emoji_name:"
    )


def test_code_spans_and_identifiers_are_left_as_typed():
    text = "run `circuitboard verify *my*_file.py` on snake_case_names and a*b*c &lt;3"
    assert mrkdwn_to_text(text) == (
        "run `circuitboard verify *my*_file.py` on snake_case_names and a*b*c <3"
    )
    assert mrkdwn_to_text("*Submission #1 `solution.py`*") == "Submission #1 `solution.py`"


def test_a_verdict_message_renders_without_slack_markup():
    message = {
        "text": "Verdict",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Verdict for submission #1"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": ":x: **replication**: 12%"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "in <#CROUND>"}]},
        ],
    }
    shown = render(message)
    for markup in (":x:", "**", "<#", "<!date"):
        assert markup not in shown
    assert "❌ replication: 12%" in shown
