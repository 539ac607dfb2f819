"""Rounds: the puzzle of the month, when it opens and closes, and in which channel.

A round is open when ``opens_at <= now < closes_at`` and it is not cancelled: the times are the
truth, so a round counts as open even if the scheduler has not yet posted its announcement. The
status records what the scheduler has done (announced, closed, solutions posted).

Default cadence: a round opens on the 1st of a month at ``settings.round_open_hour`` in
``settings.timezone`` and closes when the next round opens (the 1st of the following month).
Rounds never overlap, so "the current round" is always one round.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import outbox, slack_refs
from bot.services import grammar
from bot.settings import Settings, get_settings
from puzzles.catalog import Puzzle, UnknownPuzzle, get_puzzle
from storage.models import (
    HintStatus,
    PuzzleVersion,
    Round,
    RoundStatus,
)

# A round may be planned to open "now": allow this much clock skew between typing and saving.
PAST_TOLERANCE = timedelta(minutes=2)
ACTIVE = (RoundStatus.SCHEDULED, RoundStatus.OPEN)


class RoundError(ValueError):
    """A refused round operation; the message is shown to the admin as is."""


def announce_key(round_id: int) -> str:
    return f"round:{round_id}:announce"


def solutions_key(round_id: int) -> str:
    return f"round:{round_id}:solutions"


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime; pass a timezone-aware time (UTC)")
    return now


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RoundError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from exc


def format_time(when: datetime, tz: str | ZoneInfo) -> str:
    """``Tue 01 Dec 2026 17:00 CET``: how admins see times (in the configured zone)."""
    local = when.astimezone(zone(tz) if isinstance(tz, str) else tz)
    return local.strftime("%a %d %b %Y %H:%M %Z")


def current(*, session: Session, now: datetime) -> Round | None:
    """The open round at ``now`` (the latest-opened one if several overlap), or None."""
    _require_aware(now)
    return session.scalars(
        select(Round)
        .where(
            Round.status != RoundStatus.CANCELLED,
            Round.opens_at <= now,
            Round.closes_at > now,
        )
        .order_by(Round.opens_at.desc(), Round.id.desc())
        .limit(1)
    ).first()


def upcoming(*, session: Session, now: datetime) -> Round | None:
    """The next round to open after ``now`` (not cancelled), or None."""
    _require_aware(now)
    return session.scalars(
        select(Round)
        .where(Round.status != RoundStatus.CANCELLED, Round.opens_at > now)
        .order_by(Round.opens_at, Round.id)
        .limit(1)
    ).first()


def get(*, session: Session, round_id: int) -> Round | None:
    return session.get(Round, round_id)


def require(*, session: Session, round_id: int) -> Round:
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise RoundError(f"there is no round #{round_id} (see `rounds list`)")
    return round_


def list_rounds(*, session: Session, include_cancelled: bool = True) -> list[Round]:
    query = select(Round).order_by(Round.opens_at, Round.id)
    if not include_cancelled:
        query = query.where(Round.status != RoundStatus.CANCELLED)
    return list(session.scalars(query))


def next_round(*, session: Session, round_: Round) -> Round | None:
    """The round that follows ``round_`` (opens at or after its opening), if one is planned."""
    return session.scalars(
        select(Round)
        .where(
            Round.status != RoundStatus.CANCELLED,
            Round.id != round_.id,
            Round.opens_at >= round_.opens_at,
        )
        .order_by(Round.opens_at, Round.id)
        .limit(1)
    ).first()


def puzzle_for(round_: Round) -> Puzzle | None:
    """The catalog entry of the round's puzzle (None if it left the catalog)."""
    try:
        return get_puzzle(round_.puzzle_version.slug)
    except UnknownPuzzle:
        return None


# --- default cadence -------------------------------------------------------------------------


def month_opening(year: int, month: int, *, tz: str, hour: int) -> datetime:
    """The 1st of ``month`` at ``hour`` local time, in UTC."""
    while month > 12:
        year, month = year + 1, month - 12
    return datetime(year, month, 1, hour, tzinfo=zone(tz)).astimezone(UTC)


def next_opening(after: datetime, *, tz: str, hour: int, strictly: bool = False) -> datetime:
    """The first default opening (1st of a month, ``hour`` local) at or after ``after``."""
    local = after.astimezone(zone(tz))
    candidate = month_opening(local.year, local.month, tz=tz, hour=hour)
    if candidate < after or (strictly and candidate == after):
        candidate = month_opening(local.year, local.month + 1, tz=tz, hour=hour)
    return candidate


# --- planning --------------------------------------------------------------------------------


def ensure_puzzle_version(*, session: Session, slug: str) -> PuzzleVersion:
    """The PuzzleVersion row for the catalog's current version of ``slug`` (created once)."""
    try:
        puzzle = get_puzzle(slug)
    except UnknownPuzzle as exc:
        raise RoundError(str(exc)) from exc
    row = session.scalars(
        select(PuzzleVersion).where(
            PuzzleVersion.slug == puzzle.slug, PuzzleVersion.version == puzzle.version
        )
    ).first()
    if row is None:
        row = PuzzleVersion(
            slug=puzzle.slug,
            version=puzzle.version,
            weights_sha256=puzzle.weights_sha256,
            title=puzzle.title,
        )
        session.add(row)
        session.flush()
    return row


def _describe(round_: Round, tz: str) -> str:
    return (
        f"round #{round_.id} ({round_.puzzle_version.slug}, "
        f"{format_time(round_.opens_at, tz)} to {format_time(round_.closes_at, tz)})"
    )


def _check_no_overlap(
    *, session: Session, opens_at: datetime, closes_at: datetime, tz: str, exclude: int | None
) -> None:
    query = select(Round).where(
        Round.status != RoundStatus.CANCELLED,
        Round.opens_at < closes_at,
        Round.closes_at > opens_at,
    )
    if exclude is not None:
        query = query.where(Round.id != exclude)
    clash = session.scalars(query.order_by(Round.opens_at)).first()
    if clash is not None:
        raise RoundError(
            f"it would overlap {_describe(clash, tz)}; rounds follow each other "
            "(reschedule or cancel that one first)"
        )


def plan(
    *,
    session: Session,
    slug: str,
    channel_id: str,
    now: datetime,
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
    created_by: str | None = None,
    seed_hints: bool = True,
    settings: Settings | None = None,
) -> Round:
    """Plan a round. Without times it follows the default cadence after the last planned round.

    ``seed_hints`` schedules the puzzle's hints.md one every ``settings.hint_interval_days``.
    """
    from bot.services import hints as hints_service

    settings = settings or get_settings()
    tz, hour = settings.timezone, settings.round_open_hour
    _require_aware(now)
    channel_id = channel_id.strip()
    if not channel_id:
        raise RoundError("a round needs a channel (e.g. --channel C0123456789)")
    puzzle_version = ensure_puzzle_version(session=session, slug=slug)
    if opens_at is None:
        last = session.scalars(
            select(Round)
            .where(Round.status != RoundStatus.CANCELLED)
            .order_by(Round.closes_at.desc())
            .limit(1)
        ).first()
        start = max(now, last.closes_at) if last is not None else now
        opens_at = next_opening(start, tz=tz, hour=hour)
    _require_aware(opens_at)
    if closes_at is None:
        following = session.scalars(
            select(Round)
            .where(Round.status != RoundStatus.CANCELLED, Round.opens_at > opens_at)
            .order_by(Round.opens_at)
            .limit(1)
        ).first()
        closes_at = next_opening(opens_at, tz=tz, hour=hour, strictly=True)
        if following is not None:
            closes_at = min(closes_at, following.opens_at)
    _require_aware(closes_at)
    if opens_at < now - PAST_TOLERANCE:
        raise RoundError(
            f"the opening {format_time(opens_at, tz)} is in the past (now: {format_time(now, tz)}); "
            "use `now` to open a round right away"
        )
    if closes_at <= opens_at:
        raise RoundError(
            f"the closing {format_time(closes_at, tz)} must be after the opening "
            f"{format_time(opens_at, tz)}"
        )
    _check_no_overlap(session=session, opens_at=opens_at, closes_at=closes_at, tz=tz, exclude=None)
    round_ = Round(
        puzzle_version=puzzle_version,
        channel_id=channel_id,
        opens_at=opens_at,
        closes_at=closes_at,
        status=RoundStatus.SCHEDULED,
        created_by=created_by,
    )
    session.add(round_)
    session.flush()
    if seed_hints:
        hints_service.seed_default(
            session=session,
            round_id=round_.id,
            interval=timedelta(days=settings.hint_interval_days),
            created_by=created_by,
        )
    return round_


def reschedule(
    *,
    session: Session,
    round_id: int,
    now: datetime,
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
    settings: Settings | None = None,
) -> Round:
    """Move a round's opening (before it opened) and/or closing (before it closed).

    Moving the opening moves its scheduled hints by the same amount, so "a hint a week" stays so.
    """
    settings = settings or get_settings()
    tz = settings.timezone
    _require_aware(now)
    round_ = require(session=session, round_id=round_id)
    if round_.status not in ACTIVE:
        raise RoundError(f"round #{round_id} is {round_.status.value}; it can no longer be moved")
    if opens_at is None and closes_at is None:
        raise RoundError("give a new opening and/or closing time")
    new_opens = round_.opens_at if opens_at is None else _require_aware(opens_at)
    new_closes = round_.closes_at if closes_at is None else _require_aware(closes_at)
    if opens_at is not None and new_opens != round_.opens_at:
        if round_.opens_at <= now or round_.status != RoundStatus.SCHEDULED:
            raise RoundError(
                f"round #{round_id} opened at {format_time(round_.opens_at, tz)}; its opening "
                "can no longer be moved (its closing still can)"
            )
        if new_opens < now - PAST_TOLERANCE:
            raise RoundError(f"the new opening {format_time(new_opens, tz)} is in the past")
    if closes_at is not None and new_closes != round_.closes_at:
        if round_.closes_at <= now:
            raise RoundError(
                f"round #{round_id} closed at {format_time(round_.closes_at, tz)}; "
                "its closing can no longer be moved"
            )
        if new_closes <= now:
            raise RoundError(f"the new closing {format_time(new_closes, tz)} is in the past")
    if new_closes <= new_opens:
        raise RoundError(
            f"the closing {format_time(new_closes, tz)} must be after the opening "
            f"{format_time(new_opens, tz)}"
        )
    _check_no_overlap(
        session=session, opens_at=new_opens, closes_at=new_closes, tz=tz, exclude=round_.id
    )
    shift = new_opens - round_.opens_at
    scheduled = [h for h in round_.hints if h.status == HintStatus.SCHEDULED]
    for hint in scheduled:
        moved = hint.release_at + shift
        if not new_opens <= moved < new_closes:
            raise RoundError(
                f"hint #{hint.id} would be released at {format_time(moved, tz)}, outside the "
                "round; edit or cancel it first"
            )
    for hint in scheduled:
        hint.release_at = hint.release_at + shift
    round_.opens_at, round_.closes_at = new_opens, new_closes
    session.flush()
    return round_


def cancel(*, session: Session, round_id: int, now: datetime) -> Round:
    """Cancel a round that has not closed; its scheduled hints are cancelled with it."""
    _require_aware(now)
    round_ = require(session=session, round_id=round_id)
    if round_.status == RoundStatus.CANCELLED:
        raise RoundError(f"round #{round_id} is already cancelled")
    if round_.status not in ACTIVE or round_.closes_at <= now:
        raise RoundError(f"round #{round_id} has closed; it can no longer be cancelled")
    round_.status = RoundStatus.CANCELLED
    for hint in round_.hints:
        if hint.status == HintStatus.SCHEDULED:
            hint.status = HintStatus.CANCELLED
    session.flush()
    return round_


# --- posting (called by the scheduler's tick, and by admins for a missed post) --------------


def post_announcement(*, session: Session, round_id: int, now: datetime) -> str:
    """Queue the round's announcement (once: keyed by round) and mark the round open."""
    from bot.views.announcements import build_round_announcement

    round_ = require(session=session, round_id=round_id)
    if round_.status == RoundStatus.CANCELLED:
        raise RoundError(f"round #{round_id} is cancelled")
    key = announce_key(round_.id)
    payload = build_round_announcement(round_=round_, puzzle=puzzle_for(round_))
    outbox.enqueue(
        session=session,
        key=key,
        method="chat_postMessage",
        payload={"channel": round_.channel_id, **payload},
    )
    if round_.status == RoundStatus.SCHEDULED:
        round_.status = RoundStatus.OPEN
    return key


def post_solutions(*, session: Session, round_id: int, now: datetime) -> str:
    """Queue the round's solutions post (once) and record that the solutions were posted."""
    from bot.views.announcements import build_solutions_post

    round_ = require(session=session, round_id=round_id)
    if round_.status == RoundStatus.CANCELLED:
        raise RoundError(f"round #{round_id} is cancelled")
    if round_.closes_at > now:
        raise RoundError(f"round #{round_id} is still open; its solutions are posted at closing")
    key = solutions_key(round_.id)
    summary = results(session=session, round_id=round_.id)
    payload = build_solutions_post(
        round_=round_,
        puzzle=puzzle_for(round_),
        results=summary,
        next_round=next_round(session=session, round_=round_),
    )
    outbox.enqueue(
        session=session,
        key=key,
        method="chat_postMessage",
        payload={"channel": round_.channel_id, **payload},
    )
    round_.status = RoundStatus.SOLUTIONS_POSTED
    _final_standings(session=session, round_=round_, now=now)
    return key


def _final_standings(*, session: Session, round_: Round, now: datetime) -> None:
    """After the solutions post (queued first, so sent first): the pinned leaderboard turns into
    the final standings, private scores included. It is posted now if no verdict posted it during
    the round; a round without a single verified submission gets none."""
    from bot.services import leaderboards

    pinned = outbox.get(session=session, key=leaderboards.pinned_key(round_.id))
    if pinned is None:
        board = leaderboards.round_leaderboard(session=session, round_id=round_.id, now=now)
        if not board.entries:
            return
    leaderboards.refresh_pinned_leaderboard(session=session, round_id=round_.id, now=now)


@dataclass(frozen=True)
class BestSubmission:
    user_id: str
    submission_id: int
    private_score: float | None
    public_score: float | None
    checks_passed: int
    writeup_url: str | None


@dataclass(frozen=True)
class CreditLine:
    user_id: str
    kind: str
    joint: bool
    note: str
    link: str | None


@dataclass(frozen=True)
class RoundResults:
    """What the solutions post reports about a closed round."""

    submissions: int
    participants: int
    verified_passing: int  # users whose best verified submission passed
    solvers: int  # users whose best submission passed every check
    best: list[BestSubmission]
    credits: list[CreditLine]


def results(*, session: Session, round_id: int, top: int = 5) -> RoundResults:
    """Statistics, the best verified submissions (the closed round's leaderboard), and credits."""
    from bot.services import credits, leaderboards

    round_ = require(session=session, round_id=round_id)
    board = leaderboards.round_leaderboard(
        session=session, round_id=round_id, now=round_.closes_at, reveal=True
    )
    passing = [entry for entry in board.entries if entry.passed]
    best = [
        BestSubmission(
            user_id=entry.user_id,
            submission_id=entry.submission_id,
            private_score=entry.private_score,
            public_score=entry.public_score,
            checks_passed=entry.checks_passed,
            writeup_url=entry.writeup_url,
        )
        for entry in passing[:top]
    ]
    credit_lines = [
        CreditLine(user_id=c.user_id, kind=c.kind.value, joint=c.joint, note=c.note, link=c.link)
        for c in credits.for_round(session=session, round_id=round_id)
    ]
    return RoundResults(
        submissions=board.submissions,
        participants=board.participants,
        verified_passing=len(passing),
        solvers=board.solvers,
        best=best,
        credits=credit_lines,
    )


# --- `/puzzle admin round ...` ---------------------------------------------------------------

ROUND_USAGE = (
    "Usage: "
    + grammar.group_usage("admin", "round")
    + " (`announce`, `post-solutions`: a post missed while the bot was down)"
)


def split_args(text: str) -> list[str]:
    """Shell-like words; Slack's typographic quotes count as quotes."""
    for fancy, plain in (("“", '"'), ("”", '"'), ("‘", "'"), ("’", "'")):
        text = text.replace(fancy, plain)
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise RoundError(f"could not read that command ({exc}); check the quotes") from exc


def _channel_arg(word: str, *, directory: slack_refs.Directory | None = None) -> str:
    """A channel id from ``<#C…|name>``, ``<#C…>``, ``C…`` or a name (looked up): never a name."""
    try:
        return slack_refs.resolve_channel(word, directory=directory)
    except slack_refs.RefError as exc:
        raise RoundError(str(exc)) from exc


def _options(words: list[str], allowed: set[str]) -> dict[str, str]:
    if len(words) % 2:
        raise RoundError(f'expected pairs like `opens "<when>"`, got {" ".join(words)!r}')
    options = {}
    for name, value in zip(words[::2], words[1::2], strict=True):
        if name not in allowed:
            raise RoundError(
                f"unknown option {name!r}; expected one of {', '.join(sorted(allowed))}"
            )
        options[name] = value
    return options


def describe_round(round_: Round, *, tz: str) -> str:
    hints = [h for h in round_.hints if h.status != HintStatus.CANCELLED]
    return (
        f"#{round_.id} *{round_.puzzle_version.title}* (`{round_.puzzle_version.slug}` "
        f"v{round_.puzzle_version.version}) in <#{round_.channel_id}>: "
        f"{format_time(round_.opens_at, tz)} to {format_time(round_.closes_at, tz)}, "
        f"{round_.status.value}, {len(hints)} hint(s)"
    )


def admin_round_command(
    *,
    session: Session,
    text: str,
    actor_id: str,
    channel_id: str,
    now: datetime,
    settings: Settings | None = None,
    directory: slack_refs.Directory | None = None,
) -> str:
    """Run ``/puzzle admin round <text>`` (the caller checked the admin role); returns the reply.

    Raises ``RoundError`` (or ``hints.HintError`` for a bad time) with a message for the admin.
    """
    from bot.services.hints import describe_hint, parse_when

    settings = settings or get_settings()
    tz = settings.timezone
    words = split_args(text)
    if not words or words[0] in {"help", "-h", "--help"}:
        return ROUND_USAGE
    verb, rest = words[0], words[1:]

    def when(value: str) -> datetime:
        return parse_when(value, tz=tz, now=now, default_hour=settings.round_open_hour)

    def round_id_arg() -> int:
        if not rest or not rest[0].lstrip("#").isdigit():
            raise RoundError(f"which round? `round {verb} <id>` (see `round list`)")
        return int(rest[0].lstrip("#"))

    if verb == "list":
        rounds_ = list_rounds(session=session)
        if not rounds_:
            return "No rounds planned yet. " + ROUND_USAGE
        return "\n".join(describe_round(r, tz=tz) for r in rounds_)
    if verb == "show":
        round_ = require(session=session, round_id=round_id_arg())
        lines = [describe_round(round_, tz=tz)]
        lines += [describe_hint(h, tz=tz) for h in round_.hints]
        return "\n".join(lines)
    if verb == "plan":
        if not rest:
            raise RoundError("which puzzle? `round plan <puzzle>` (see `/puzzle` for the list)")
        options = _options(rest[1:], {"opens", "closes", "channel"})
        round_ = plan(
            session=session,
            slug=rest[0],
            channel_id=(
                _channel_arg(options["channel"], directory=directory)
                if "channel" in options
                else channel_id
            ),
            now=now,
            opens_at=when(options["opens"]) if "opens" in options else None,
            closes_at=when(options["closes"]) if "closes" in options else None,
            created_by=actor_id,
            settings=settings,
        )
        return "Planned " + describe_round(round_, tz=tz)
    if verb == "reschedule":
        round_id = round_id_arg()
        options = _options(rest[1:], {"opens", "closes"})
        round_ = reschedule(
            session=session,
            round_id=round_id,
            now=now,
            opens_at=when(options["opens"]) if "opens" in options else None,
            closes_at=when(options["closes"]) if "closes" in options else None,
            settings=settings,
        )
        return "Rescheduled " + describe_round(round_, tz=tz)
    if verb == "cancel":
        round_ = cancel(session=session, round_id=round_id_arg(), now=now)
        return "Cancelled " + describe_round(round_, tz=tz)
    if verb in {"announce", "post-solutions"}:  # a post missed while the bot was down
        post = post_announcement if verb == "announce" else post_solutions
        key = post(session=session, round_id=round_id_arg(), now=now)
        return f"Queued `{key}` (posted once, however often this is asked)."
    raise RoundError(f"unknown round command {verb!r}. " + ROUND_USAGE)
