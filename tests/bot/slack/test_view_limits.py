"""Every Block Kit view stays inside Slack's limits, even with oversized content."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.services.leaderboard_data import (
    AllTimeEntry,
    AllTimeLeaderboard,
    RoundEntry,
    RoundLeaderboard,
    ScoreRule,
)
from bot.services.overview_data import MySubmissions, RoundOverview
from bot.views import announcements, home, leaderboard, puzzle, submissions
from bot.views.limits import validate_message, validate_view
from bot.views.text import render
from puzzles.catalog import get_puzzle, list_puzzles
from storage.models import (
    Hint,
    HintStatus,
    PuzzleVersion,
    Round,
    RoundStatus,
    Submission,
    SubmissionStatus,
    Verdict,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
HUGE = ("word " * 900 + "\n\n") * 40  # ~180k characters of Markdown


def _round() -> Round:
    version = PuzzleVersion(
        id=1, slug="palindromes", version=1, weights_sha256="0" * 64, title="T" * 300
    )
    return Round(
        id=7,
        puzzle_version=version,
        channel_id="C1",
        opens_at=NOW - timedelta(days=3),
        closes_at=NOW + timedelta(days=20),
        status=RoundStatus.OPEN,
    )


def _hints(round_: Round, n: int = 30) -> list[Hint]:
    return [
        Hint(
            id=i,
            round=round_,
            position=i,
            text="h" * 4000,
            release_at=NOW,
            status=HintStatus.RELEASED,
        )
        for i in range(1, n + 1)
    ]


def _submission(i: int, status: SubmissionStatus = SubmissionStatus.VERIFIED) -> Submission:
    sub = Submission(
        id=i,
        round_id=7,
        user_id="U0USER0001",
        filename="x" * 250 + ".py",
        blob_sha256="0" * 64,
        status=status,
        stage="circuit",
        message="m" * 5000,
        attempts=2,
    )
    sub.verdicts = [
        Verdict(
            attempt=1,
            passed=True,
            checks_passed=2,
            public_score=0.99,
            scores={},
            report_md=HUGE,
            runtime_s=3.2,
            device="cpu",
            engine_version="1",
        )
    ]
    return sub


def _overview() -> RoundOverview:
    round_ = _round()
    p = get_puzzle("palindromes")
    stuffed = type(p)(**{**p.__dict__, "description_md": HUGE, "summary": "s" * 5000})
    return RoundOverview(
        round=round_, puzzle=stuffed, puzzle_title="T" * 300, hints=_hints(round_), now=NOW
    )


def _boards() -> tuple[RoundLeaderboard, AllTimeLeaderboard]:
    entries = [
        RoundEntry(
            rank=i,
            user_id=f"U{i:05d}",
            display_name="n" * 200,
            submission_id=i,
            submitted_at=NOW,
            passed=True,
            checks_passed=2,
            public_score=0.5,
            private_score=None,
            attempts=3,
            latest_status=SubmissionStatus.VERIFIED,
            writeup_url="https://x/" + "y" * 500,
        )
        for i in range(1, 500)
    ]
    board = RoundLeaderboard(
        round_id=7,
        puzzle_slug="palindromes",
        puzzle_title="T" * 300,
        channel_id="C1",
        opens_at=NOW,
        closes_at=NOW + timedelta(days=1),
        revealed=False,
        rule=ScoreRule(),
        entries=entries,
        participants=499,
        submissions=1000,
        solvers=499,
        pending_users=["U9"],
    )
    all_time = AllTimeLeaderboard(
        entries=[
            AllTimeEntry(
                rank=i,
                user_id=f"U{i}",
                display_name="n" * 200,
                best_solutions=1,
                honourable_mentions=2,
                rounds_solved=3,
                current_streak=1,
                longest_streak=4,
            )
            for i in range(1, 500)
        ],
        rounds_counted=12,
    )
    return board, all_time


def messages() -> dict[str, dict]:
    ov = _overview()
    board, all_time = _boards()
    subs = [_submission(i, s) for i, s in enumerate(list(SubmissionStatus) * 10, start=1)]
    verdict = subs[0].verdicts[0]
    round_ = ov.round
    from bot.services.round_data import BestSubmission, CreditLine, RoundResults

    results = RoundResults(
        submissions=9,
        participants=3,
        verified_passing=2,
        solvers=2,
        best=[BestSubmission("U0USER0001", 1, 0.9, 0.8, 2, "https://w")] * 5,
        credits=[CreditLine("U0USER0001", "best_solution", False, "n" * 2000, "https://w")] * 5,
    )
    built = {
        "puzzle": puzzle.build_puzzle_message(ov),
        "puzzle_no_round": puzzle.build_puzzle_message(
            RoundOverview(round=None, puzzle=None, puzzle_title=None, now=NOW)
        ),
        "hints": puzzle.build_hints_message(ov),
        "help": puzzle.build_help_message(is_admin=True, unknown="z" * 5000),
        "error": puzzle.build_error_message("e" * 5000),
        "info": puzzle.build_info_message("i" * 5000),
        "status": submissions.build_status_message(subs[0]),
        "verdict": submissions.build_verdict_message(subs[0], verdict),
        "failure": submissions.build_failure_message(subs[5]),
        "channel_line": submissions.build_channel_verified_line("U0USER0001"),
        "me": submissions.build_my_submissions(subs, best_score=0.9),
        "me_empty": submissions.build_my_submissions([], best_score=None),
        "leaderboard": leaderboard.build_round_leaderboard_message(board, viewer_id="U400"),
        "pinned": leaderboard.build_pinned_leaderboard_message(board),
        "all_time": leaderboard.build_all_time_leaderboard_message(all_time),
        "announcement": announcements.build_round_announcement(round_=round_, puzzle=ov.puzzle),
        "hint_post": announcements.build_hint_post(hint=ov.hints[0], number=1, round_=round_),
        "solutions": announcements.build_solutions_post(
            round_=round_, puzzle=ov.puzzle, results=results, next_round=round_
        ),
        "admin_notice": announcements.build_admin_notice("a" * 5000),
    }
    for p in list_puzzles():
        built[f"puzzle:{p.slug}"] = puzzle.build_puzzle_message(
            RoundOverview(round=round_, puzzle=p, puzzle_title=p.title, now=NOW)
        )
    return built


def views() -> dict[str, dict]:
    ov = _overview()
    board, all_time = _boards()
    subs = [_submission(i) for i in range(1, 40)]
    blocks = leaderboard.leaderboard_home_blocks(board, all_time, viewer_id="U0USER0001")
    built = {
        "home_admin": home.build_home_view(
            overview=ov, mine=MySubmissions(subs, 0.9), leaderboard=blocks, is_admin=True
        ),
        "home_user": home.build_home_view(
            overview=ov, mine=MySubmissions([], None), leaderboard=blocks, is_admin=False
        ),
        "submit_modal": puzzle.build_submit_modal(puzzle_title="T" * 300, private_metadata="7"),
        "hint_modal": announcements.build_hint_modal(round_=ov.round, tz_name="Europe/Paris"),
    }
    for action_id in home.ADMIN_MODALS:
        built[action_id] = home.build_admin_modal(action_id, round_usage="u" * 5000)
    built["error_modal"] = puzzle.build_error_modal("e" * 5000)
    return built


@pytest.mark.parametrize("name", sorted(messages()))
def test_message_within_slack_limits(name):
    payload = messages()[name]
    assert validate_message(payload) == []
    assert render(payload).strip()  # the console can show it too


@pytest.mark.parametrize("name", sorted(views()))
def test_view_within_slack_limits(name):
    view = views()[name]
    assert validate_view(view) == []
    assert render(view).strip()


def test_admin_panel_only_for_admins():
    names = {"home_admin": True, "home_user": False}
    for name, expected in names.items():
        ids = {
            e.get("action_id")
            for b in views()[name]["blocks"]
            for e in b.get("elements", [])
            if isinstance(e, dict)
        }
        assert (home.ADMIN_HINT in ids) is expected


def test_validator_catches_violations():
    too_many = {"text": "x", "blocks": [{"type": "divider"}] * 51}
    assert validate_message(too_many)
    long_section = {
        "text": "x",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "a" * 3001}}],
    }
    assert validate_message(long_section)
    long_header = {
        "text": "x",
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "a" * 151}}],
    }
    assert validate_message(long_header)
