"""One handler per scheduled action: open a round, release a hint, close a round.

Each runs in its own transaction with the row locked, checks the row is still due (a job that
runs twice finds it done and skips), then calls the flow that changes the status and queues the
post. Found due later than the grace window, the post is not made and admins are told how to
make it by hand; later than a few ticks, it is made and admins are told it went out late.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.flows.hints import release_hint
from bot.flows.rounds import announce_round, post_solutions
from bot.posts.admins import notify_admins
from bot.posts.hints import release_key
from bot.posts.rounds import announce_key, solutions_key
from bot.services import hints, rounds
from bot.settings import Settings
from storage.models import Hint, HintStatus, Round, RoundStatus

log = logging.getLogger(__name__)

# At equal due times: close a round (its solutions) before opening the next, and open a round
# before releasing a hint due at its opening.
ORDER = {"close": 0, "open": 1, "hint": 2}


def grace_window(settings: Settings) -> timedelta:
    return timedelta(hours=settings.schedule_grace_hours)


def late_threshold(settings: Settings) -> timedelta:
    """Later than this a post counts as "after downtime" and admins hear about it."""
    return max(timedelta(seconds=3 * settings.schedule_tick_seconds), timedelta(minutes=2))


def due_events(session: Session, now: datetime) -> list[tuple[datetime, int, str, int]]:
    """(due time, order, kind, id) of every round to open or close and hint to release, in order."""
    events: list[tuple[datetime, int, str, int]] = []
    for round_ in session.scalars(
        select(Round).where(Round.status == RoundStatus.SCHEDULED, Round.opens_at <= now)
    ):
        events.append((round_.opens_at, ORDER["open"], "open", round_.id))
    for round_ in session.scalars(
        select(Round).where(Round.status.in_(rounds.ACTIVE), Round.closes_at <= now)
    ):
        events.append((round_.closes_at, ORDER["close"], "close", round_.id))
    for hint in session.scalars(
        select(Hint)
        .join(Round, Round.id == Hint.round_id)
        .where(
            Hint.status == HintStatus.SCHEDULED,
            Hint.release_at <= now,
            Round.status != RoundStatus.CANCELLED,
        )
    ):
        events.append((hint.release_at, ORDER["hint"], "hint", hint.id))
    return sorted(events)


@dataclass(frozen=True)
class _Context:
    session: Session
    settings: Settings
    now: datetime

    def fmt(self, when: datetime) -> str:
        return rounds.format_time(when, self.settings.timezone)

    def notify(self, key: str, text: str) -> None:
        """Queue a notice to the admin channel, or to each admin's DM when none is configured."""
        log.warning("scheduler notice: %s", text)
        notify_admins(session=self.session, settings=self.settings, key=key, text=text)

    def missed(self, *, what: str, due: datetime, key: str, how: str) -> tuple[str, str]:
        grace = self.settings.schedule_grace_hours
        self.notify(
            f"notice:{key}:missed",
            f"{what} was due {self.fmt(due)} but the bot was down until {self.fmt(self.now)}, "
            f"past the {grace:g} h grace window, {how}",
        )
        return "missed", key

    def posted(self, *, what: str, due: datetime, key: str) -> tuple[str, str]:
        if self.now - due <= late_threshold(self.settings):
            return "posted", key
        self.notify(
            f"notice:{key}:late",
            f"{what} was due {self.fmt(due)}; the bot was down, so it was posted late, at "
            f"{self.fmt(self.now)} (within the {self.settings.schedule_grace_hours:g} h grace "
            "window).",
        )
        return "late", key

    def too_late(self, due: datetime) -> bool:
        return self.now - due > grace_window(self.settings)


def act(
    *, session: Session, settings: Settings, kind: str, item_id: int, now: datetime
) -> tuple[str, str | None]:
    """Do one due thing; returns ``(outcome, key)`` with outcome posted|late|missed|skipped."""
    return _HANDLERS[kind](_Context(session, settings, now), item_id)


def release_due_hint(ctx: _Context, hint_id: int) -> tuple[str, str | None]:
    hint = ctx.session.get(Hint, hint_id, with_for_update=True)
    if hint is None or hint.status != HintStatus.SCHEDULED or hint.release_at > ctx.now:
        return "skipped", None
    due, what = hint.release_at, f"hint #{hint.id} of round #{hint.round_id}"
    if ctx.too_late(due):
        hints.mark_missed(session=ctx.session, hint_id=hint.id)
        return ctx.missed(
            what=what,
            due=due,
            key=release_key(hint.id),
            how=(
                f"so it was NOT posted. Post it now with `/puzzle admin hint release {hint.id}` "
                f"(or `circuitboard rounds hints release {hint.id}`)."
            ),
        )
    key = release_hint(session=ctx.session, hint_id=hint.id, now=ctx.now)
    return ctx.posted(what=what, due=due, key=key)


def open_due_round(ctx: _Context, round_id: int) -> tuple[str, str | None]:
    round_ = ctx.session.get(Round, round_id, with_for_update=True)
    if round_ is None or round_.status != RoundStatus.SCHEDULED or round_.opens_at > ctx.now:
        return "skipped", None
    due, what = round_.opens_at, f"the announcement of round #{round_.id}"
    if ctx.too_late(due):
        round_.status = RoundStatus.OPEN
        return ctx.missed(
            what=what, due=due, key=announce_key(round_.id), how=_how(round_, "announce")
        )
    key = announce_round(session=ctx.session, round_id=round_.id, now=ctx.now)
    return ctx.posted(what=what, due=due, key=key)


def close_due_round(ctx: _Context, round_id: int) -> tuple[str, str | None]:
    round_ = ctx.session.get(Round, round_id, with_for_update=True)
    if round_ is None or round_.status not in rounds.ACTIVE or round_.closes_at > ctx.now:
        return "skipped", None
    due, what = round_.closes_at, f"the solutions post of round #{round_.id}"
    if ctx.too_late(due):
        round_.status = RoundStatus.CLOSED
        return ctx.missed(
            what=what, due=due, key=solutions_key(round_.id), how=_how(round_, "post-solutions")
        )
    key = post_solutions(session=ctx.session, round_id=round_.id, now=ctx.now)
    return ctx.posted(what=what, due=due, key=key)


def _how(round_: Round, verb: str) -> str:
    """The end of a missed-round notice: the round's status now and the command to post by hand."""
    return (
        f"so it was NOT posted (the round is now {round_.status.value}). Post it with "
        f"`/puzzle admin round {verb} {round_.id}` (or `circuitboard rounds {verb} {round_.id}`)."
    )


_HANDLERS = {"hint": release_due_hint, "open": open_due_round, "close": close_due_round}
