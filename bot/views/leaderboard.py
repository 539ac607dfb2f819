"""Leaderboard messages: the round and all-time boards, and the spoiler-free pinned message.

While a round is open nothing here shows a private score or a write-up link (a link may give a
solution away); the pinned message shows only ranks and pass marks until the round closes.
"""

from __future__ import annotations

from typing import Any

from bot.services.leaderboard_data import AllTimeLeaderboard, RoundEntry, RoundLeaderboard
from bot.views.blocks import (
    SECTION_TEXT_MAX,
    Block,
    context,
    divider,
    header,
    message,
    section,
)

DEFAULT_LIMIT = 20
# A section holds 3000 characters; 10 lines of ~120 characters each per section keeps us well inside.
LINES_PER_SECTION = 10


def format_score(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def pass_marks(entry: RoundEntry, checks_total: int | None) -> str:
    """``✅ 2/2`` when every check passed, ``◐ 1/2`` part-way, ``✗ 0/2`` none."""
    if checks_total is None:  # puzzle not in the catalog: a fail means at least one check more
        checks_total = max(entry.checks_passed + (0 if entry.passed else 1), 1)
    total = checks_total
    done = min(entry.checks_passed, total)
    if entry.passed and done >= total:
        mark = "✅"
    elif done > 0:
        mark = "◐"
    else:
        mark = "✗"
    return f"{mark} {done}/{total}"


def _who(user_id: str) -> str:
    return f"<@{user_id}>"


def _line(board: RoundLeaderboard, entry: RoundEntry, *, spoiler_free: bool) -> str:
    parts = [f"*{entry.rank}.* {_who(entry.user_id)}", pass_marks(entry, board.rule.checks_total)]
    if not spoiler_free or board.revealed:
        parts.append(f"{board.rule.metric} {format_score(entry.public_score)}")
    if board.revealed:
        parts.append(f"private {format_score(entry.private_score)}")
        if entry.writeup_url:
            parts.append(f"<{entry.writeup_url}|write-up>")
    if not spoiler_free:
        parts.append(f"{entry.attempts} attempt{'s' if entry.attempts != 1 else ''}")
        if entry.latest_status.value != "verified":
            parts.append(f"latest: {entry.latest_status.value}")
    return " · ".join(parts)


def _chunked(lines: list[str]) -> list[Block]:
    """Sections of whole lines (at most ``LINES_PER_SECTION``, within a section's 3000
    characters), so a long write-up link is never cut in half."""
    groups: list[list[str]] = [[]]
    for line in lines:
        current = groups[-1]
        size = sum(len(x) + 1 for x in current) + len(line)
        if current and (len(current) >= LINES_PER_SECTION or size > SECTION_TEXT_MAX):
            groups.append([])
        groups[-1].append(line)
    return [section("\n".join(group)) for group in groups if group]


def _status_line(board: RoundLeaderboard) -> str:
    state = (
        "closed: final standings, ranked by the private held-out score"
        if board.revealed
        else f"open until {board.closes_at:%Y-%m-%d %H:%M} UTC: ranked by the public held-out "
        "score; private scores are revealed when the round closes"
    )
    direction = "higher" if board.rule.higher_is_better else "lower"
    return (
        f"{board.participants} participant{'s' if board.participants != 1 else ''}, "
        f"{board.submissions} submission{'s' if board.submissions != 1 else ''}, "
        f"{board.solvers} solved · {state} · {board.rule.metric}: {direction} is better"
    )


def round_leaderboard_text(
    board: RoundLeaderboard, *, limit: int = DEFAULT_LIMIT, spoiler_free: bool = False
) -> str:
    """The board as mrkdwn text (console mode, notification fallback)."""
    title = f"Leaderboard: {board.puzzle_title} (round {board.round_id})"
    lines = [_line(board, e, spoiler_free=spoiler_free) for e in board.entries[:limit]]
    if not lines:
        lines = ["No verified submissions yet."]
    more = len(board.entries) - limit
    if more > 0:
        lines.append(f"… and {more} more")
    return "\n".join([f"*{title}*", *lines, _status_line(board)])


def build_round_leaderboard_message(
    board: RoundLeaderboard, *, limit: int = DEFAULT_LIMIT, viewer_id: str | None = None
) -> dict[str, Any]:
    """The ``/puzzle leaderboard`` answer: scores, attempts and latest status, plus the viewer's row."""
    return message(
        f"Leaderboard for {board.puzzle_title}",
        round_leaderboard_blocks(board, limit=limit, viewer_id=viewer_id),
    )


def round_leaderboard_blocks(
    board: RoundLeaderboard,
    *,
    limit: int = DEFAULT_LIMIT,
    viewer_id: str | None = None,
    spoiler_free: bool = False,
) -> list[Block]:
    blocks: list[Block] = [header(f"Leaderboard: {board.puzzle_title}")]
    lines = [_line(board, e, spoiler_free=spoiler_free) for e in board.entries[:limit]]
    if lines:
        blocks.extend(_chunked(lines))
    else:
        blocks.append(section("No verified submissions yet. Be the first!"))
    more = len(board.entries) - limit
    if more > 0:
        blocks.append(context(f"… and {more} more ranked"))
    if viewer_id is not None:
        mine = board.entry_for(viewer_id)
        if mine is not None and mine.rank > limit:
            blocks.append(section("You: " + _line(board, mine, spoiler_free=spoiler_free)))
        elif mine is None and viewer_id in board.pending_users:
            blocks.append(context("Your submission is waiting for its verdict."))
    blocks.append(context(_status_line(board)))
    return blocks


def build_pinned_leaderboard_message(
    board: RoundLeaderboard, *, limit: int = DEFAULT_LIMIT
) -> dict[str, Any]:
    """The message pinned in the round's channel: ranks and pass marks only until the round closes."""
    blocks = round_leaderboard_blocks(board, limit=limit, spoiler_free=True)
    text = (
        f"Final standings for {board.puzzle_title}"
        if board.revealed
        else f"Live standings for {board.puzzle_title}"
    )
    return message(text, blocks)


def all_time_lines(board: AllTimeLeaderboard, *, limit: int = DEFAULT_LIMIT) -> list[str]:
    lines = []
    for e in board.entries[:limit]:
        credits = []
        if e.best_solutions:
            credits.append(f"🏆 {e.best_solutions}")
        if e.honourable_mentions:
            credits.append(f"🎖 {e.honourable_mentions}")
        lines.append(
            " · ".join(
                [
                    f"*{e.rank}.* {_who(e.user_id)}",
                    *credits,
                    f"{e.rounds_solved} solved",
                    f"streak {e.current_streak} (best {e.longest_streak})",
                ]
            )
        )
    return lines


def all_time_leaderboard_text(board: AllTimeLeaderboard, *, limit: int = DEFAULT_LIMIT) -> str:
    lines = all_time_lines(board, limit=limit) or ["Nobody has solved a round yet."]
    return "\n".join(["*All-time leaderboard*", *lines])


def all_time_leaderboard_blocks(
    board: AllTimeLeaderboard, *, limit: int = DEFAULT_LIMIT
) -> list[Block]:
    lines = all_time_lines(board, limit=limit)
    blocks: list[Block] = [header("All-time leaderboard")]
    blocks.extend(_chunked(lines) if lines else [section("Nobody has solved a round yet.")])
    blocks.append(
        context(
            f"🏆 best solution · 🎖 honourable mention · streak: consecutive rounds solved, "
            f"over {board.rounds_counted} round{'s' if board.rounds_counted != 1 else ''}"
        )
    )
    return blocks


def build_all_time_leaderboard_message(
    board: AllTimeLeaderboard, *, limit: int = DEFAULT_LIMIT
) -> dict[str, Any]:
    return message("All-time leaderboard", all_time_leaderboard_blocks(board, limit=limit))


def leaderboard_home_blocks(
    round_board: RoundLeaderboard | None,
    all_time: AllTimeLeaderboard,
    *,
    viewer_id: str | None = None,
    limit: int = 10,
) -> list[Block]:
    """The App Home leaderboard section: the current round's board, then the all-time board."""
    blocks: list[Block] = []
    if round_board is not None:
        blocks.extend(round_leaderboard_blocks(round_board, limit=limit, viewer_id=viewer_id))
        blocks.append(divider())
    blocks.extend(all_time_leaderboard_blocks(all_time, limit=limit))
    return blocks


__all__ = [
    "all_time_leaderboard_blocks",
    "all_time_leaderboard_text",
    "build_all_time_leaderboard_message",
    "build_pinned_leaderboard_message",
    "build_round_leaderboard_message",
    "leaderboard_home_blocks",
    "pass_marks",
    "round_leaderboard_blocks",
    "round_leaderboard_text",
]
