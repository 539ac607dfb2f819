"""The monthly write-up as Markdown: puzzle, solution, winners, leaderboard, statistics, next puzzle.

Admins paste it into the community's blog or newsletter, so it is plain Markdown with display
names (not Slack mentions) and absolute links only. Not a Slack post: ``circuitboard export-post``
prints it (``bot.services.round_refs.resolve_round`` finds the round).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services import credits as credit_service
from bot.services import leaderboards
from bot.services.round_refs import RoundNotFound
from bot.views.escape import markdown
from storage.models import Credit, CreditKind, Round, RoundStatus, SlackUser, utcnow

SUMMARY_CHARS = 1500


def _md(text: str | None) -> str:
    """People's text (display names, credit notes) made inert in Markdown: no link, image, HTML
    or emphasis survives, and it stays on one line (a table cell or a list item)."""
    return " ".join(markdown(text).split())


def _summary(markdown: str, limit: int = SUMMARY_CHARS) -> str:
    """The opening paragraphs of a Markdown document, its top-level title dropped."""
    lines = markdown.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    paragraphs = [p.strip() for p in "\n".join(lines).split("\n\n") if p.strip()]
    out: list[str] = []
    for para in paragraphs:
        if out and sum(len(p) for p in out) + len(para) > limit:
            break
        out.append(para)
    text = "\n\n".join(out)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _catalog(slug: str):  # type: ignore[no-untyped-def]
    from puzzles.catalog import CatalogError, UnknownPuzzle, get_puzzle

    try:
        return get_puzzle(slug)
    except (UnknownPuzzle, CatalogError):
        return None


def _duration(delta: timedelta) -> str:
    days, seconds = delta.days, delta.seconds
    hours = seconds // 3600
    if days:
        return f"{days} day{'s' if days != 1 else ''} {hours} h"
    minutes = (seconds % 3600) // 60
    return f"{hours} h {minutes} min"


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def build_post(
    *, session: Session, round_id: int, top_n: int = 10, now: datetime | None = None
) -> str:
    """The write-up for one round (provisional, with private scores hidden, if it is still open)."""
    now = now or utcnow()
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise RoundNotFound(f"no round with id {round_id}")
    board = leaderboards.round_leaderboard(
        session=session, round_id=round_id, now=now, with_names=True
    )
    puzzle = _catalog(board.puzzle_slug)
    out: list[str] = [
        f"# {round_.opens_at:%B %Y}: {board.puzzle_title}",
        "",
        f"*Round {round_.id}, {round_.opens_at:%d %B} to {round_.closes_at:%d %B %Y} (UTC).*",
        "",
    ]
    if not board.revealed:
        out += [
            "> **Provisional:** this round is still open; standings may change and private"
            " held-out scores stay hidden until it closes.",
            "",
        ]

    out += ["## The puzzle", ""]
    if puzzle is not None:
        out += [puzzle.summary or _summary(puzzle.description_md, 600), ""]
    else:
        out += [f"`{board.puzzle_slug}` (no longer in the catalog).", ""]

    out += ["## The solution", ""]
    if not board.revealed:
        out += ["_The solution is published when the round closes._", ""]
    else:
        writeup = _summary(puzzle.writeup_md) if puzzle is not None and puzzle.writeup_md else ""
        out += [writeup or "_The mechanism write-up is not available._", ""]

    out += _winners(session, round_id=round_id)
    out += _leaderboard_table(board, top_n=top_n)
    out += _participation(board)
    out += _next_puzzle(session, round_)
    return "\n".join(out).rstrip() + "\n"


def _winners(session: Session, *, round_id: int) -> list[str]:
    held = credit_service.for_round(session=session, round_id=round_id)
    names = dict(
        session.execute(
            select(SlackUser.id, SlackUser.display_name).where(
                SlackUser.id.in_([c.user_id for c in held])
            )
        ).all()
    )

    def line(credit: Credit) -> str:
        text = f"**{_md(names.get(credit.user_id) or credit.user_id)}**"
        if credit.note:
            text += f": {_md(credit.note)}"
        if credit.link:
            text += f" ([write-up]({credit.link}))"
        return text

    best = [c for c in held if c.kind == CreditKind.BEST_SOLUTION]
    mentions = [c for c in held if c.kind == CreditKind.HONOURABLE_MENTION]
    out = ["## Winners", ""]
    if not held:
        return [*out, "_No credits have been awarded for this round yet._", ""]
    if len(best) == 1:
        out += [f"🏆 Best solution: {line(best[0])}", ""]
    elif best:
        out += ["🏆 Joint best solutions:", "", *[f"- {line(c)}" for c in best], ""]
    if mentions:
        out += ["🎖 Honourable mentions:", "", *[f"- {line(c)}" for c in mentions], ""]
    return out


def _leaderboard_table(board: leaderboards.RoundLeaderboard, *, top_n: int) -> list[str]:
    shown = board.entries[:top_n]
    out = [f"## Leaderboard (top {min(top_n, len(board.entries))})", ""]
    if not shown:
        return [*out, "_No verified submissions._", ""]
    metric = board.rule.metric
    direction = "higher" if board.rule.higher_is_better else "lower"
    header = f"| # | Participant | Checks passed | {metric} (public) |"
    rule = "|---|---|---|---|"
    if board.revealed:
        header += f" {metric} (private) |"
        rule += "---|"
    out += [header, rule]
    total = board.rule.checks_total
    for e in shown:
        checks = f"{e.checks_passed}/{total}" if total is not None else str(e.checks_passed)
        row = f"| {e.rank} | {_md(e.name)} | {checks} | {_score(e.public_score)} |"
        if board.revealed:
            row += f" {_score(e.private_score)} |"
        out.append(row)
    ranking = "private held-out score" if board.revealed else "public held-out score"
    out += [
        "",
        f"Ranked by checks passed, then the {ranking} ({metric}, {direction} is better), then"
        " the earliest submission.",
        "",
    ]
    return out


def _participation(board: leaderboards.RoundLeaderboard) -> list[str]:
    out = ["## Participation", ""]
    people = board.participants
    out.append(
        f"- {people} participant{'s' if people != 1 else ''} sent {board.submissions}"
        f" submission{'s' if board.submissions != 1 else ''}"
        + (f" ({board.submissions / people:.1f} each on average)" if people else "")
        + "."
    )
    out.append(f"- {len(board.entries)} got a verdict on at least one submission.")
    share = f" ({100 * board.solvers / people:.0f}% of participants)" if people else ""
    out.append(f"- {board.solvers} solved it, passing every check{share}.")
    solvers = [
        e
        for e in board.entries
        if e.passed
        and (board.rule.checks_total is None or e.checks_passed >= board.rule.checks_total)
    ]
    if solvers:
        first = min(solvers, key=lambda e: e.submitted_at)
        out.append(
            f"- First full solve: {_md(first.name)}, "
            f"{_duration(first.submitted_at - board.opens_at)} after the round opened."
        )
    return [*out, ""]


def _next_puzzle(session: Session, round_: Round) -> list[str]:
    following = session.scalars(
        select(Round)
        .where(Round.status != RoundStatus.CANCELLED, Round.opens_at > round_.opens_at)
        .order_by(Round.opens_at, Round.id)
        .limit(1)
    ).first()
    out = ["## Next puzzle", ""]
    if following is None:
        return [*out, "_The next puzzle has not been scheduled yet._", ""]
    puzzle = _catalog(following.puzzle_version.slug)
    out.append(
        f"**{_md(following.puzzle_version.title)}** opens on {following.opens_at:%d %B %Y}"
        f" at {following.opens_at:%H:%M} UTC."
    )
    if puzzle is not None and puzzle.summary:
        out += ["", puzzle.summary]
    return [*out, ""]


__all__ = ["build_post"]
