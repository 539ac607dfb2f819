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

import os
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, aliased

from bot.services.all_time import ALL_TIME_DEFAULT_LIMIT, all_time_leaderboard
from bot.services.leaderboard_cache import bind_key, by_user, cached, clear_cache, data_version
from bot.services.leaderboard_data import (
    CLOSED_STATUSES,
    EXCLUDED_STATUSES,
    WAITING_STATUSES,
    AllTimeEntry,
    AllTimeLeaderboard,
    LeaderboardError,
    RoundEntry,
    RoundLeaderboard,
    ScoreRule,
    is_revealed,
)
from puzzles.catalog import EXTRA_PATH_ENV, CatalogError, UnknownPuzzle, get_puzzle
from storage.models import Round, SlackUser, Submission, SubmissionStatus, Verdict, utcnow


def score_rule(slug: str) -> ScoreRule:
    """``_score_rule`` for the catalog as configured now (the extra catalog path may change)."""
    return _score_rule(slug, os.environ.get(EXTRA_PATH_ENV, ""))


@lru_cache(maxsize=64)
def _score_rule(slug: str, _catalog_path: str) -> ScoreRule:
    """How the puzzle's primary score (``verdicts.public_score``/``private_score``) ranks.

    The verification engine stores the quality score there (higher is better); a puzzle can
    say otherwise in its ``[verify]`` table with ``score_name`` and ``score_higher_is_better``.
    A puzzle missing from the catalog (retired, or a test fixture) ranks higher-is-better.
    """
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
    key = ("round", bind_key(session), round_id, round_.closes_at, revealed, rule)
    body = cached(
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


def _compute_round(session: Session, round_: Round, rule: ScoreRule, revealed: bool) -> _RoundBody:
    """One pass over the round's submissions: each user's best ranking submission (if any),
    their number of submissions and the status of their latest one."""
    rows = session.execute(_best_per_user(session, round_, rule, revealed)).all()
    entries = _ranked_entries(rows, rule, revealed)
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


def _best_per_user(session: Session, round_: Round, rule: ScoreRule, revealed: bool) -> Any:
    """The query: per user, their best submission's row (``ranks`` 0 when nothing ranks), with
    their attempt count and latest status. Columns in the order ``_ranked_entries`` reads."""
    user = by_user(session)
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
    best_first = (
        ranks.desc(),
        Verdict.checks_passed.desc(),
        score_order,
        Submission.created_at.asc(),
        Submission.id.asc(),
    )
    newest_verdict = and_(
        Verdict.submission_id == Submission.id,
        ~select(newer.id)
        .where(newer.submission_id == Verdict.submission_id, newer.attempt > Verdict.attempt)
        .exists(),
    )
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
            func.count().over(partition_by=user).label("attempts"),
            func.first_value(Submission.status)
            .over(partition_by=user, order_by=newest_first)
            .label("latest"),
            func.row_number().over(partition_by=user, order_by=best_first).label("n"),
        )
        .outerjoin(Verdict, newest_verdict)
        .where(Submission.round_id == round_.id)
        .subquery()
    )
    c = per_user.c
    return select(
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


def _ranked_entries(rows: list[Any], rule: ScoreRule, revealed: bool) -> list[RoundEntry]:
    """The ranking rows in board order; ties (same checks, score and upload time) share a rank."""
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
    return entries


__all__ = [
    "ALL_TIME_DEFAULT_LIMIT",
    "CLOSED_STATUSES",
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
    "round_leaderboard",
    "score_rule",
]
