"""``circuitboard rounds``: plan the monthly rounds and their hints, and run the scheduler.

Times are typed and shown in ``CIRCUITBOARD_TIMEZONE`` (stored in UTC); they accept the forms of
``bot.grammar.when.parse_when`` ("2026-12-01T17:00", "2026-12-08", "in 3 days", "now", ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import typer

app = typer.Typer(
    help="Monthly rounds: plan, list, show, reschedule, cancel; hints; the scheduler.",
    no_args_is_help=True,
)
hints_app = typer.Typer(
    help="A round's hints: add, list, edit, cancel, release.", no_args_is_help=True
)
app.add_typer(hints_app, name="hints")


def _echo(text: str, *, err: bool = False) -> None:
    """Service replies are Slack mrkdwn (`*title*`, `<#C…>`): shown as a terminal reads them."""
    from bot.views.text import mrkdwn_to_text

    typer.echo(mrkdwn_to_text(text), err=err)


@contextmanager
def _session() -> Iterator[tuple[Any, Any]]:
    """A unit of work and the settings; refusals print their message and exit 1."""
    from bot.grammar import GrammarError
    from bot.services.hints import HintError
    from bot.services.rounds import RoundError
    from bot.settings import get_settings
    from storage.db import session_factory, session_scope

    settings = get_settings()
    try:
        with session_scope(session_factory(settings.db_url)) as session:
            yield session, settings
    except (RoundError, HintError, GrammarError) as exc:
        _echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from exc


def _now() -> datetime:
    from storage.models import utcnow

    return utcnow()


def _when(value: str | None, settings: Any, now: datetime) -> datetime | None:
    from bot.grammar.when import parse_when

    if value is None:
        return None
    return parse_when(value, tz=settings.timezone, now=now, default_hour=settings.round_open_hour)


def _print_round(round_: Any, settings: Any, *, with_hints: bool = False) -> None:
    from bot.services.hints import describe_hint
    from bot.services.rounds import describe_round

    _echo(describe_round(round_, tz=settings.timezone))
    if with_hints:
        for hint in round_.hints:
            _echo("  " + describe_hint(hint, tz=settings.timezone))


@app.command()
def plan(
    puzzle: str = typer.Option(
        ..., "--puzzle", help="Catalog slug (see `circuitboard puzzles list`)."
    ),
    channel: str = typer.Option(..., "--channel", help="Slack channel id, e.g. C0123456789."),
    opens: str | None = typer.Option(
        None, "--opens", help="Default: the 1st of the next free month at the configured hour."
    ),
    closes: str | None = typer.Option(None, "--closes", help="Default: the next round's opening."),
    no_hints: bool = typer.Option(
        False, "--no-hints", help="Do not seed a hint a week from the puzzle's hints.md."
    ),
) -> None:
    """Plan a round of PUZZLE in CHANNEL."""
    from bot.services import rounds

    now = _now()
    with _session() as (session, settings):
        round_ = rounds.plan(
            session=session,
            slug=puzzle,
            channel_id=channel,
            now=now,
            opens_at=_when(opens, settings, now),
            closes_at=_when(closes, settings, now),
            seed_hints=not no_hints,
            settings=settings,
        )
        _echo("planned:")
        _print_round(round_, settings, with_hints=True)


@app.command(name="list")
def list_(
    all_: bool = typer.Option(False, "--all", help="Include cancelled rounds."),
) -> None:
    """List rounds, oldest first."""
    from bot.services import rounds

    with _session() as (session, settings):
        found = rounds.list_rounds(session=session, include_cancelled=all_)
        if not found:
            _echo("no rounds planned (circuitboard rounds plan --help)")
        for round_ in found:
            _print_round(round_, settings)


@app.command()
def show(round_id: int = typer.Argument(..., help="Round id (see `rounds list`).")) -> None:
    """Show a round and its hints."""
    from bot.services import rounds

    with _session() as (session, settings):
        _print_round(rounds.require(session=session, round_id=round_id), settings, with_hints=True)


@app.command()
def reschedule(
    round_id: int = typer.Argument(...),
    opens: str | None = typer.Option(None, "--opens", help="New opening (before it opened)."),
    closes: str | None = typer.Option(None, "--closes", help="New closing (before it closed)."),
) -> None:
    """Move a round; moving its opening moves its scheduled hints with it."""
    from bot.services import rounds

    now = _now()
    with _session() as (session, settings):
        round_ = rounds.reschedule(
            session=session,
            round_id=round_id,
            now=now,
            opens_at=_when(opens, settings, now),
            closes_at=_when(closes, settings, now),
            settings=settings,
        )
        _echo("rescheduled:")
        _print_round(round_, settings, with_hints=True)


@app.command()
def cancel(round_id: int = typer.Argument(...)) -> None:
    """Cancel a round that has not closed (and its scheduled hints)."""
    from bot.services import rounds

    with _session() as (session, settings):
        round_ = rounds.cancel(session=session, round_id=round_id, now=_now())
        _echo("cancelled:")
        _print_round(round_, settings)


def _post(action: Callable[..., str], round_id: int) -> None:
    with _session() as (session, _settings):
        key = action(session=session, round_id=round_id, now=_now())
        _echo(f"queued {key} (the running bot posts it; posted once whatever happens)")


@app.command()
def announce(round_id: int = typer.Argument(...)) -> None:
    """Post a round's announcement now (e.g. one missed while the bot was down)."""
    from bot.flows.rounds import announce_round

    _post(announce_round, round_id)


@app.command(name="post-solutions")
def post_solutions(round_id: int = typer.Argument(...)) -> None:
    """Post a closed round's solutions now (e.g. one missed while the bot was down)."""
    from bot.flows import rounds as round_flows

    _post(round_flows.post_solutions, round_id)


@app.command()
def tick() -> None:
    """Run one scheduler cycle now (open/close due rounds, release due hints) and print it."""
    from bot import scheduler as schedule
    from bot.settings import get_settings
    from storage.db import session_factory

    settings = get_settings()
    report = schedule.run_cycle(session_factory=session_factory(settings.db_url), settings=settings)
    _echo(f"queued: {', '.join(report.posted) or 'nothing'}")
    if report.late:
        _echo(f"late (after downtime): {', '.join(report.late)}")
    if report.missed:
        _echo(f"missed (past the grace window, not posted): {', '.join(report.missed)}")
    if report.errors:
        _echo(f"errors: {'; '.join(report.errors)}", err=True)
        raise typer.Exit(1)


@app.command()
def scheduler() -> None:
    """Run only the scheduler in the foreground (the bot process normally runs it)."""
    from bot import scheduler as schedule
    from bot.settings import get_settings

    settings = get_settings()
    schedule.run_scheduler_forever(
        settings=settings, client=schedule.slack_client(settings), ready=typer.echo
    )


# --- hints ---------------------------------------------------------------------------------


@hints_app.command("add")
def hints_add(
    round_id: int = typer.Argument(..., help="Round id."),
    text: str = typer.Argument(..., help="The hint (Markdown)."),
    at: str = typer.Option(
        ..., "--at", help='Release time, e.g. "2026-12-08 17:00" or "in 3 days".'
    ),
) -> None:
    """Schedule a hint."""
    from bot.services import hints

    now = _now()
    with _session() as (session, settings):
        hint = hints.add(
            session=session,
            round_id=round_id,
            text=text,
            release_at=_when(at, settings, now),  # type: ignore[arg-type]
            now=now,
            settings=settings,
        )
        _echo("scheduled " + hints.describe_hint(hint, tz=settings.timezone))


@hints_app.command("list")
def hints_list(round_id: int = typer.Argument(..., help="Round id.")) -> None:
    """List a round's hints in release order."""
    from bot.services import hints, rounds

    with _session() as (session, settings):
        rounds.require(session=session, round_id=round_id)
        found = hints.list_hints(session=session, round_id=round_id)
        if not found:
            _echo(f"round #{round_id} has no hints")
        for hint in found:
            _echo(hints.describe_hint(hint, tz=settings.timezone))


@hints_app.command("edit")
def hints_edit(
    hint_id: int = typer.Argument(...),
    at: str | None = typer.Option(None, "--at", help="New release time."),
    text: str | None = typer.Option(None, "--text", help="New text."),
) -> None:
    """Change a hint's time or text (refused once it is released)."""
    from bot.services import hints

    now = _now()
    with _session() as (session, settings):
        hint = hints.edit(
            session=session,
            hint_id=hint_id,
            now=now,
            text=text,
            release_at=_when(at, settings, now),
            settings=settings,
        )
        _echo("updated " + hints.describe_hint(hint, tz=settings.timezone))


@hints_app.command("cancel")
def hints_cancel(hint_id: int = typer.Argument(...)) -> None:
    """Cancel a hint (refused once it is released)."""
    from bot.services import hints

    with _session() as (session, settings):
        hint = hints.cancel(session=session, hint_id=hint_id, now=_now(), settings=settings)
        _echo("cancelled " + hints.describe_hint(hint, tz=settings.timezone))


@hints_app.command("release")
def hints_release(hint_id: int = typer.Argument(...)) -> None:
    """Release a missed hint now (one whose time passed while the bot was down)."""
    from bot.flows.hints import release_hint
    from bot.services import hints

    with _session() as (session, settings):
        hint = hints.require(session=session, hint_id=hint_id)
        now = _now()
        if hint.release_at > now:
            _echo(
                f"refused: hint #{hint_id} is scheduled for a later time; edit it with --at now",
                err=True,
            )
            raise typer.Exit(1)
        key = release_hint(session=session, hint_id=hint_id, now=now)
        _echo(f"queued {key}: " + hints.describe_hint(hint, tz=settings.timezone))
