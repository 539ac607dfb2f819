"""Round and all-time leaderboards, computed from the verdicts in one or two SQL queries each.

Only the newest verdict of a submission counts (re-verification can raise or lower a rank). Ranks
go by checks passed, then the verdict's quality score (``puzzles.verify.quality``: agreement,
agreement on the model's mistakes, circuit faithfulness x minimality, the causal score of a v2
hypothesis (0 for a file that declares no variables), compactness; not raw agreement, which a task
rule or a weight copy earns too), then the earliest upload. During a round
the quality built on the public held-out half ranks; the private half's is revealed, and ranks by,
once the round is closed, so nobody can tune a solution to the numbers shown.
"""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, case, distinct, func, literal, select, update
from sqlalchemy.orm import Session, aliased

from storage.models import (
    Credit,
    CreditKind,
    OutboxMessage,
    OutboxStatus,
    Round,
    RoundStatus,
    SlackUser,
    Submission,
    SubmissionStatus,
    Verdict,
    utcnow,
)

# Submissions that never rank, whatever verdict they carry (an admin cancelled or rejected them).
EXCLUDED_STATUSES = (SubmissionStatus.CANCELLED, SubmissionStatus.REJECTED)
CLOSED_STATUSES = (RoundStatus.CLOSED, RoundStatus.SOLUTIONS_POSTED)
WAITING_STATUSES = (SubmissionStatus.RECEIVED, SubmissionStatus.QUEUED, SubmissionStatus.RUNNING)


class LeaderboardError(LookupError):
    """The round asked for does not exist (the message says which)."""


@dataclass(frozen=True)
class ScoreRule:
    """How a puzzle's primary score ranks: its metric name and direction."""

    metric: str = "quality"
    higher_is_better: bool = True
    checks_total: int | None = None


@dataclass(slots=True)
class RoundEntry:
    """One row of a round board. Boards are cached and shared: treat entries as read-only."""

    rank: int
    user_id: str
    display_name: str | None
    submission_id: int
    submitted_at: datetime
    passed: bool
    checks_passed: int
    public_score: float | None
    private_score: float | None  # None until the round is closed
    attempts: int  # the user's submissions in this round
    latest_status: SubmissionStatus
    writeup_url: str | None

    @property
    def name(self) -> str:
        return self.display_name or self.user_id


@dataclass(frozen=True)
class RoundLeaderboard:
    round_id: int
    puzzle_slug: str
    puzzle_title: str
    channel_id: str
    opens_at: datetime
    closes_at: datetime
    revealed: bool  # the round is closed: private scores shown and used for ranking
    rule: ScoreRule
    entries: list[RoundEntry]
    participants: int  # users with at least one submission
    submissions: int
    solvers: int  # users whose best submission passes every check
    pending_users: list[str] = field(default_factory=list)  # unranked, a verdict on its way

    def entry_for(self, user_id: str) -> RoundEntry | None:
        return next((e for e in self.entries if e.user_id == user_id), None)


@dataclass(frozen=True)
class AllTimeEntry:
    rank: int
    user_id: str
    display_name: str | None
    best_solutions: int
    honourable_mentions: int
    rounds_solved: int
    current_streak: int
    longest_streak: int

    @property
    def name(self) -> str:
        return self.display_name or self.user_id


@dataclass(frozen=True)
class AllTimeLeaderboard:
    entries: list[AllTimeEntry]
    rounds_counted: int


def score_rule(slug: str) -> ScoreRule:
    """``_score_rule`` for the catalog as configured now (the extra catalog path may change)."""
    import os

    from puzzles.catalog import EXTRA_PATH_ENV

    return _score_rule(slug, os.environ.get(EXTRA_PATH_ENV, ""))


@lru_cache(maxsize=64)
def _score_rule(slug: str, _catalog_path: str) -> ScoreRule:
    """How the puzzle's primary score (``verdicts.public_score``/``private_score``) ranks.

    The verification engine stores the quality score there (higher is better); a puzzle can
    say otherwise in its ``[verify]`` table with ``score_name`` and ``score_higher_is_better``.
    A puzzle missing from the catalog (retired, or a test fixture) ranks higher-is-better.
    """
    from puzzles.catalog import CatalogError, UnknownPuzzle, get_puzzle

    try:
        verify = get_puzzle(slug).verify
    except (UnknownPuzzle, CatalogError):
        return ScoreRule()
    checks = verify.get("checks")
    return ScoreRule(
        metric=str(verify.get("score_name", "quality")),
        higher_is_better=bool(verify.get("score_higher_is_better", True)),
        checks_total=len(checks) if isinstance(checks, list) else None,
    )


def is_revealed(round_: Round, *, now: datetime) -> bool:
    """Private scores show once the round is closed by status or by its closing time."""
    return round_.status in CLOSED_STATUSES or now >= round_.closes_at


def round_leaderboard(
    *,
    session: Session,
    round_id: int,
    now: datetime | None = None,
    rule: ScoreRule | None = None,
    reveal: bool | None = None,
    with_names: bool = False,
) -> RoundLeaderboard:
    """Each user's best verified submission, ranked by checks passed, score, then earliest upload.

    ``reveal`` overrides whether the round counts as closed (default: from status and ``now``);
    ``rule`` overrides the catalog's score direction. Slack views mention users (``<@U…>``), so
    display names are looked up only ``with_names`` (the write-up export).
    """
    now = now or utcnow()
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise LeaderboardError(f"no round with id {round_id}")
    slug = round_.puzzle_version.slug
    rule = rule or score_rule(slug)
    revealed = is_revealed(round_, now=now) if reveal is None else reveal
    key = ("round", _bind_key(session), round_id, round_.closes_at, revealed, rule)
    body = _cached(
        session, key, lambda: _compute_round(session, round_, rule, revealed), round_id=round_id
    )
    entries = list(body.entries)
    if with_names:
        names = dict(
            session.execute(
                select(SlackUser.id, SlackUser.display_name).where(
                    SlackUser.id.in_(
                        select(Submission.user_id).where(Submission.round_id == round_id).distinct()
                    )
                )
            ).all()
        )
        entries = [replace(e, display_name=names.get(e.user_id)) for e in entries]
    return RoundLeaderboard(
        round_id=round_.id,
        puzzle_slug=slug,
        puzzle_title=round_.puzzle_version.title,
        channel_id=round_.channel_id,
        opens_at=round_.opens_at,
        closes_at=round_.closes_at,
        revealed=revealed,
        rule=rule,
        entries=entries,
        participants=body.participants,
        submissions=body.submissions,
        solvers=body.solvers,
        pending_users=list(body.pending_users),
    )


@dataclass(frozen=True)
class _RoundBody:
    """The expensive, cacheable part of a round board (no names: they can change any time)."""

    entries: tuple[RoundEntry, ...]
    participants: int
    submissions: int
    solvers: int
    pending_users: tuple[str, ...]


def _by_user(session: Session) -> Any:
    """``submissions.user_id`` to group by: byte order on PostgreSQL, whose locale collation
    (the database default) sorts several times slower and is not needed to group."""
    if session.get_bind().dialect.name == "postgresql":
        return Submission.user_id.collate("C")
    return Submission.user_id


def _compute_round(session: Session, round_: Round, rule: ScoreRule, revealed: bool) -> _RoundBody:
    """One pass over the round's submissions: each user's best ranking submission (if any),
    their number of submissions and the status of their latest one."""
    by_user = _by_user(session)
    newer = aliased(Verdict)
    score = (
        func.coalesce(Verdict.private_score, Verdict.public_score)
        if revealed
        else Verdict.public_score
    )
    ranks = case(
        (
            and_(
                Verdict.id.is_not(None),
                Submission.status.not_in(EXCLUDED_STATUSES),
                Submission.created_at < round_.closes_at,
            ),
            1,
        ),
        else_=0,
    )
    score_order = score.desc().nulls_last() if rule.higher_is_better else score.asc().nulls_last()
    newest_first = (Submission.created_at.desc(), Submission.id.desc())
    per_user = (
        select(
            Submission.user_id,
            Submission.id.label("submission_id"),
            Submission.created_at,
            Submission.writeup_url,
            Verdict.passed,
            Verdict.checks_passed,
            Verdict.public_score,
            Verdict.private_score,
            score.label("score"),
            ranks.label("ranks"),
            func.count().over(partition_by=by_user).label("attempts"),
            func.first_value(Submission.status)
            .over(partition_by=by_user, order_by=newest_first)
            .label("latest"),
            func.row_number()
            .over(
                partition_by=by_user,
                order_by=(
                    ranks.desc(),
                    Verdict.checks_passed.desc(),
                    score_order,
                    Submission.created_at.asc(),
                    Submission.id.asc(),
                ),
            )
            .label("n"),
        )
        .outerjoin(
            Verdict,
            and_(
                Verdict.submission_id == Submission.id,
                ~select(newer.id)
                .where(
                    newer.submission_id == Verdict.submission_id, newer.attempt > Verdict.attempt
                )
                .exists(),
            ),
        )
        .where(Submission.round_id == round_.id)
        .subquery()
    )
    c = per_user.c
    rows = session.execute(
        select(
            c.user_id,
            c.submission_id,
            c.created_at,
            c.writeup_url,
            c.passed,
            c.checks_passed,
            c.public_score,
            c.private_score,
            c.score,
            c.ranks,
            c.attempts,
            c.latest,
        ).where(c.n == 1)
    ).all()

    sign = -1 if rule.higher_is_better else 1
    ranked = sorted(
        (row for row in rows if row[9]),
        key=lambda row: (-row[5], row[8] is None, sign * (row[8] or 0.0), row[2], row[1]),
    )
    entries: list[RoundEntry] = []
    previous_key: tuple[Any, ...] | None = None
    rank = 0
    for position, row in enumerate(ranked, start=1):
        (user_id, submission_id, created_at, writeup_url, passed, checks_passed) = row[:6]
        public_score, private_score, score_value, _, attempts, latest = row[6:]
        key = (checks_passed, score_value, created_at)
        if key != previous_key:
            rank = position
        previous_key = key
        entries.append(
            RoundEntry(
                rank,
                user_id,
                None,
                submission_id,
                created_at,
                bool(passed),
                checks_passed,
                public_score,
                private_score if revealed else None,
                attempts,
                SubmissionStatus(latest),
                writeup_url,
            )
        )
    return _RoundBody(
        entries=tuple(entries),
        participants=len(rows),
        submissions=sum(row[10] for row in rows),
        solvers=sum(
            1
            for e in entries
            if e.passed and (rule.checks_total is None or e.checks_passed >= rule.checks_total)
        ),
        pending_users=tuple(
            sorted(row[0] for row in rows if not row[9] and row[11] in WAITING_STATUSES)
        ),
    )


def _counted_rounds(*, session: Session, now: datetime) -> list[Round]:
    """Rounds that have opened and were not cancelled, oldest first: the sequence streaks run over."""
    return list(
        session.scalars(
            select(Round)
            .where(Round.status != RoundStatus.CANCELLED, Round.opens_at <= now)
            .order_by(Round.opens_at, Round.id)
        )
    )


ALL_TIME_DEFAULT_LIMIT = 100


def all_time_leaderboard(
    *, session: Session, now: datetime | None = None, limit: int | None = ALL_TIME_DEFAULT_LIMIT
) -> AllTimeLeaderboard:
    """Credits, rounds solved and streaks of consecutive rounds solved: the top ``limit`` users.

    ``limit=None`` returns everyone who has a solve or a credit.

    A round is solved by a user when the newest verdict of one of their submissions passed. The
    current streak is not broken by the open round the user has not solved yet.

    Who solved each closed round is cached apart from the open round, so a verdict in the open
    round re-reads only that round (see ``_verdict_marks`` for how new verdicts are noticed).
    """
    now = now or utcnow()
    rounds = _counted_rounds(session=session, now=now)
    latest_open = bool(rounds) and not is_revealed(rounds[-1], now=now)
    open_round = rounds[-1] if latest_open else None
    bind = _bind_key(session)
    rounds_key = tuple((r.id, r.status.value, r.opens_at, r.closes_at) for r in rounds)
    open_id = open_round.id if open_round is not None else None
    window, recent, recent_open = _verdict_marks(session, open_id)
    excluded_total, excluded_open = _excluded_counts(session, open_id)
    fp = (window, recent, recent_open, excluded_total, excluded_open, _credit_marks(session))

    key = ("all-time", bind, rounds_key, latest_open, limit, fp)
    shown = _cache_get(key)
    if shown is None:
        closed_rounds = [r for r in rounds if r is not open_round]
        closed_key = (
            "solved-closed",
            bind,
            rounds_key,
            tuple(r.id for r in closed_rounds),  # the counts below are monotonic for one set
            window,
            recent - recent_open,
            excluded_total - excluded_open,
        )
        closed = _cache_get(closed_key)
        if closed is None:
            closed = _closed_streaks(closed_rounds, _solvers(session, closed_rounds))
            _cache_put(closed_key, closed)
        open_solvers: frozenset[str] | None = None
        if open_round is not None:
            open_key = (
                "solved-open",
                bind,
                rounds_key,
                open_round.id,
                window,
                recent_open,
                excluded_open,
            )
            open_solvers = _cache_get(open_key)
            if open_solvers is None:
                open_solvers = _solvers(session, [open_round])[open_round.id]
                _cache_put(open_key, open_solvers)
        shown = _rank_all_time(session, closed, open_solvers, limit)
        _cache_put(key, shown)

    names: dict[str, str | None] = {}
    if shown:
        query = select(SlackUser.id, SlackUser.display_name)
        if limit is not None:
            query = query.where(SlackUser.id.in_([user for user, _ in shown]))
        names = dict(session.execute(query).all())
    entries: list[AllTimeEntry] = []
    previous: tuple[int, ...] | None = None
    for position, (user_id, stats) in enumerate(shown, start=1):
        rank = entries[-1].rank if stats == previous else position
        previous = stats
        best, mentions, solved, current, longest = stats
        entries.append(
            AllTimeEntry(
                rank=rank,
                user_id=user_id,
                display_name=names.get(user_id),
                best_solutions=best,
                honourable_mentions=mentions,
                rounds_solved=solved,
                current_streak=current,
                longest_streak=longest,
            )
        )
    return AllTimeLeaderboard(entries=entries, rounds_counted=len(rounds))


VERDICT_WINDOW = 1000
"""Verdict ids further than this below the newest are assumed committed (worker transactions
are short): only the newest ids are counted to notice a verdict that commits late."""


def _verdict_marks(session: Session, round_id: int | None) -> tuple[int, int, int]:
    """(window start, verdicts above it, those of them in ``round_id``).

    Verdicts are append-only: everything at or below the window start is settled (the start
    itself names it, and moves every ``VERDICT_WINDOW`` verdicts), and the count above it grows
    with every new verdict, even one committed after a verdict with a higher id. A primary-key
    range instead of counting the whole table.
    """
    top = session.scalar(select(func.max(Verdict.id)))
    if top is None:
        return (0, 0, 0)
    start = (top // VERDICT_WINDOW - 1) * VERDICT_WINDOW
    # A correlated lookup, not a join: a join tempts the planner into scanning all submissions.
    verdict_round = (
        select(Submission.round_id).where(Submission.id == Verdict.submission_id).scalar_subquery()
    )
    in_round = verdict_round == (round_id if round_id is not None else -1)
    recent, mine = session.execute(
        select(func.count(), func.count(case((in_round, 1))))
        .select_from(Verdict)
        .where(Verdict.id > start)
    ).one()
    return (start, int(recent), int(mine))


def _excluded_counts(session: Session, round_id: int | None) -> tuple[int, int]:
    """(cancelled or rejected submissions, those in ``round_id``): index-only counts."""
    excluded = Submission.status.in_(EXCLUDED_STATUSES)
    parts = [
        select(func.count()).select_from(Submission).where(excluded).scalar_subquery(),
        select(func.count())
        .select_from(Submission)
        .where(excluded, Submission.round_id == (round_id if round_id is not None else -1))
        .scalar_subquery(),
    ]
    total, mine = session.execute(select(*parts)).one()
    return (int(total), int(mine))


def _credit_marks(session: Session) -> tuple[Any, ...]:
    return tuple(
        session.execute(
            select(func.count(Credit.id), func.max(Credit.id), func.count(Credit.revoked_at))
        ).one()
    )


def _solvers(session: Session, rounds: list[Round]) -> dict[int, frozenset[str]]:
    """Who solved each of ``rounds``: a passing newest verdict on an in-time submission."""
    found: dict[int, set[str]] = {r.id: set() for r in rounds}
    if not rounds:
        return {}
    # The stored marker (kept by a trigger on verdicts) instead of finding each submission's
    # newest verdict: an index-only scan of ix_submissions_solved, in (round, user) order. Each
    # round's closing time is a literal CASE rather than a join, which would lose that order.
    closes = case(
        {r.id: literal(r.closes_at, Round.closes_at.type) for r in rounds},
        value=Submission.round_id,
    )
    solved = (
        Submission.round_id.in_(list(found)),
        Submission.newest_verdict_passed == True,  # noqa: E712 (matches the partial index)
        Submission.status.not_in(EXCLUDED_STATUSES),
        Submission.created_at < closes,
    )
    by_user = _by_user(session)
    # One row per round (user ids joined by spaces, which Slack ids never contain): far fewer
    # rows to fetch than one per solver.
    if session.get_bind().dialect.name == "postgresql":
        # Grouped straight off the index (no hash of 30k+ pairs); SQLite's group_concat takes
        # DISTINCT only with one argument, hence the subquery below.
        query = (
            select(Submission.round_id, func.string_agg(distinct(by_user), " "))
            .where(*solved)
            .group_by(Submission.round_id)
        )
    else:
        pairs = (
            select(Submission.round_id, by_user.label("user_id"))
            .where(*solved)
            .distinct()
            .subquery()
        )
        query = select(pairs.c.round_id, func.aggregate_strings(pairs.c.user_id, " ")).group_by(
            pairs.c.round_id
        )
    rows = session.execute(query)
    for round_id, users in rows:
        found[round_id].update((users or "").split())
    return {round_id: frozenset(users) for round_id, users in found.items()}


def _closed_streaks(
    rounds: list[Round], solvers: dict[int, frozenset[str]]
) -> dict[str, tuple[int, int, int]]:
    """Per user over ``rounds`` (in order): (rounds solved, longest streak, streak that reaches
    the last of them)."""
    # One bit per round solved (bit i: the i-th round, from 1; bit 0 stays clear): tens of
    # thousands of (round, user) pairs cost one dict update each, then a few int ops per user.
    solved: dict[str, int] = {}
    for index, round_ in enumerate(rounds, start=1):
        bit = 1 << index
        for user_id in solvers.get(round_.id, ()):
            solved[user_id] = solved.get(user_id, 0) | bit
    last = len(rounds)
    full = (1 << (last + 1)) - 1
    streaks: dict[str, tuple[int, int, int]] = {}
    for user_id, mask in solved.items():
        longest, runs = 0, mask
        while runs:  # each pass shortens every run of ones by one
            runs &= runs << 1
            longest += 1
        trailing = last - (full & ~mask).bit_length() + 1  # ones down from the last round
        streaks[user_id] = (mask.bit_count(), longest, trailing)
    return streaks


def _rank_all_time(
    session: Session,
    closed: dict[str, tuple[int, int, int]],
    open_solvers: frozenset[str] | None,
    limit: int | None,
) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(user, (best, mentions, solved, current streak, longest streak)) in leaderboard order.

    ``closed``: ``_closed_streaks`` of the closed rounds; ``open_solvers``: who has solved the
    open round (None when no round is open). Solving the open round extends the streak that
    reached the last closed round; not having solved it yet does not break it.
    """
    totals: dict[str, list[int]] = {
        user_id: [0, 0, solved, trail, longest]
        for user_id, (solved, longest, trail) in closed.items()
    }
    for user_id in open_solvers or ():
        stats = totals.get(user_id)
        if stats is None:
            totals[user_id] = [0, 0, 1, 1, 1]
            continue
        stats[2] += 1
        stats[3] += 1
        stats[4] = max(stats[4], stats[3])

    credit_rows = session.execute(
        select(
            Credit.user_id,
            func.sum(case((Credit.kind == CreditKind.BEST_SOLUTION, 1), else_=0)),
            func.sum(case((Credit.kind == CreditKind.HONOURABLE_MENTION, 1), else_=0)),
        )
        .where(Credit.revoked_at.is_(None))
        .group_by(Credit.user_id)
    )
    for user_id, best, mentions in credit_rows:
        stats = totals.setdefault(user_id, [0, 0, 0, 0, 0])
        stats[0], stats[1] = int(best or 0), int(mentions or 0)

    def order(item: tuple[str, list[int]]) -> tuple[Any, ...]:
        best, mentions, solved, current, longest = item[1]
        return (-best, -mentions, -solved, -longest, -current, item[0])

    items = totals.items()
    ordered = (
        sorted(items, key=order) if limit is None else heapq.nsmallest(limit, items, key=order)
    )
    return tuple((user_id, tuple(stats)) for user_id, stats in ordered)


# --- caching: boards are recomputed only when the data they are built from changed ----------

_CACHE_SIZE = 32
_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_cache_lock = threading.Lock()


def _bind_key(session: Session) -> str:
    return str(session.get_bind().url)


def data_version(*, session: Session, round_id: int) -> tuple[Any, ...]:
    """A fingerprint of what a round's board is built from; any change to it moves one part.

    New verdicts (``_verdict_marks``), and the round's submissions: count, newest ``updated_at``
    (latest statuses) and how many are cancelled or rejected (a change that a skewed clock could
    hide from ``updated_at``), on the (round_id, updated_at, status) index.
    """
    mine = Submission.round_id == round_id
    excluded = func.count(case((Submission.status.in_(EXCLUDED_STATUSES), 1)))
    submissions = session.execute(
        select(func.count(), func.max(Submission.updated_at), excluded).where(mine)
    ).one()
    start, _, in_round = _verdict_marks(session, round_id)
    return (start, in_round, *submissions)


def _cache_get(key: tuple[Any, ...]) -> Any:
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    return None


def _cache_put(key: tuple[Any, ...], value: Any) -> None:
    with _cache_lock:
        _cache[key] = value
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def _cached(
    session: Session, key: tuple[Any, ...], compute: Callable[[], Any], *, round_id: int
) -> Any:
    """``compute()`` memoised per process under ``key`` plus the round's data fingerprint."""
    full_key = (*key, data_version(session=session, round_id=round_id))
    value = _cache_get(full_key)
    if value is None:
        value = compute()
        _cache_put(full_key, value)
    return value


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


# --- the pinned leaderboard message in the round's channel -----------------------------------


def pinned_key(round_id: int) -> str:
    return f"round:{round_id}:leaderboard"


def refresh_pinned_leaderboard(
    *, session: Session, round_id: int, now: datetime | None = None
) -> OutboxMessage | None:
    """Queue the pinned leaderboard post, or an edit of it carrying the current standings.

    The first call posts (key ``round:{id}:leaderboard``) and queues its pin with it (key
    ``round:{id}:leaderboard:pin``, ``pins_add`` threaded on the post: the outbox fills in the
    post's ts once it is sent); later calls queue ``chat_update``s keyed
    ``round:{id}:leaderboard:update:{n}`` whose ``thread_key`` is the post. Calls coalesce: a post
    or edit still pending is rewritten in place rather than queueing another, and nothing is queued
    when the standings have not changed. Returns the row that will carry the fresh content, or
    None if none needed.

    The round's row is locked first (``FOR UPDATE``; a no-op on SQLite, whose writers are
    serialised anyway), so two workers recording verdicts at once refresh one after the other and
    the second one's board includes the first one's verdict.
    """
    from bot import outbox
    from bot.views.leaderboard import build_pinned_leaderboard_message

    session.scalars(  # populate_existing: what we waited for may have changed the round
        select(Round)
        .where(Round.id == round_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    board = round_leaderboard(session=session, round_id=round_id, now=now)
    content = build_pinned_leaderboard_message(board)
    key = pinned_key(round_id)
    # populate_existing: the dispatcher updates these rows from other sessions (status, ts).
    post = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.idempotency_key == key)
        .execution_options(populate_existing=True)
    ).first()
    if post is None:
        post = outbox.enqueue(
            session=session,
            key=key,
            method="chat_postMessage",
            payload={"channel": board.channel_id, **content},
        )
        _queue_pin(session, key, board.channel_id)
        return post
    if post.status == OutboxStatus.FAILED:
        return None  # the post never made it (e.g. the bot is not in the channel): nothing to edit
    _queue_pin(
        session, key, board.channel_id
    )  # no-op once queued (a row from before pins rode along)
    updates = list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.idempotency_key.like(f"{key}:update:%"))
            .order_by(OutboxMessage.id)
            .execution_options(populate_existing=True)
        )
    )
    last = updates[-1] if updates else post
    if _content(last.payload) == content:
        return None
    if last.status == OutboxStatus.PENDING and _rewrite_pending(session, last, content):
        return last
    return outbox.enqueue(
        session=session,
        key=f"{key}:update:{len(updates) + 1}",
        method="chat_update",
        payload={"channel": board.channel_id, **content},
        thread_key=key,
    )


def _queue_pin(session: Session, key: str, channel_id: str) -> None:
    """Pin the post once the outbox has sent it (its ts becomes the pin's ``timestamp``)."""
    from bot import outbox

    outbox.enqueue(
        session=session,
        key=f"{key}:pin",
        method="pins_add",
        payload={"channel": channel_id},
        thread_key=key,
    )


def _content(payload: dict[str, Any]) -> dict[str, Any]:
    return {"text": payload.get("text"), "blocks": payload.get("blocks")}


def _rewrite_pending(session: Session, row: OutboxMessage, content: dict[str, Any]) -> bool:
    """Swap the content of a row not yet sent; False if a dispatcher has already claimed it.

    The dispatcher claims a row only if its attempts are unchanged and ``next_attempt_at`` is not
    after the moment it started, so moving ``next_attempt_at`` to now also makes a dispatcher that
    read the old payload skip the row; it sends the new payload on its next pass.
    """
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == row.id,
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.attempts == row.attempts,
        )
        .values(payload={**row.payload, **content}, next_attempt_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount == 1


__all__ = [
    "AllTimeEntry",
    "AllTimeLeaderboard",
    "LeaderboardError",
    "RoundEntry",
    "RoundLeaderboard",
    "ScoreRule",
    "all_time_leaderboard",
    "clear_cache",
    "data_version",
    "is_revealed",
    "pinned_key",
    "refresh_pinned_leaderboard",
    "round_leaderboard",
    "score_rule",
]
