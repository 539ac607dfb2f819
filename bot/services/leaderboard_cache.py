"""Leaderboard caching: boards are recomputed only when the data they are built from changed.

A board is memoised per process under its key plus a fingerprint of its inputs: the verdict marks
(new verdicts, even one committed late), the round's submissions (count, newest update, how many
are excluded) and the credits. The fingerprints are index-only counts, far cheaper than a board.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from bot.services.leaderboard_data import EXCLUDED_STATUSES
from storage.models import Credit, Submission, Verdict

VERDICT_WINDOW = 1000
"""Verdict ids further than this below the newest are assumed committed (worker transactions
are short): only the newest ids are counted to notice a verdict that commits late."""


def verdict_marks(session: Session, round_id: int | None) -> tuple[int, int, int]:
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


def excluded_counts(session: Session, round_id: int | None) -> tuple[int, int]:
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


def credit_marks(session: Session) -> tuple[Any, ...]:
    return tuple(
        session.execute(
            select(func.count(Credit.id), func.max(Credit.id), func.count(Credit.revoked_at))
        ).one()
    )


_CACHE_SIZE = 32
_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_cache_lock = threading.Lock()


def bind_key(session: Session) -> str:
    return str(session.get_bind().url)


def data_version(*, session: Session, round_id: int) -> tuple[Any, ...]:
    """A fingerprint of what a round's board is built from; any change to it moves one part.

    New verdicts (``verdict_marks``), and the round's submissions: count, newest ``updated_at``
    (latest statuses) and how many are cancelled or rejected (a change that a skewed clock could
    hide from ``updated_at``), on the (round_id, updated_at, status) index.
    """
    mine = Submission.round_id == round_id
    excluded = func.count(case((Submission.status.in_(EXCLUDED_STATUSES), 1)))
    submissions = session.execute(
        select(func.count(), func.max(Submission.updated_at), excluded).where(mine)
    ).one()
    start, _, in_round = verdict_marks(session, round_id)
    return (start, in_round, *submissions)


def cache_get(key: tuple[Any, ...]) -> Any:
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    return None


def cache_put(key: tuple[Any, ...], value: Any) -> None:
    with _cache_lock:
        _cache[key] = value
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def cached(
    session: Session, key: tuple[Any, ...], compute: Callable[[], Any], *, round_id: int
) -> Any:
    """``compute()`` memoised per process under ``key`` plus the round's data fingerprint."""
    full_key = (*key, data_version(session=session, round_id=round_id))
    value = cache_get(full_key)
    if value is None:
        value = compute()
        cache_put(full_key, value)
    return value


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def by_user(session: Session) -> Any:
    """``submissions.user_id`` to group by: byte order on PostgreSQL, whose locale collation
    (the database default) sorts several times slower and is not needed to group."""
    if session.get_bind().dialect.name == "postgresql":
        return Submission.user_id.collate("C")
    return Submission.user_id
