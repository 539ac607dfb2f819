"""``circuitboard export-post ROUND``: the monthly write-up as Markdown."""

from __future__ import annotations

from pathlib import Path

import typer


def export_post(
    round_ref: str = typer.Argument(
        ..., metavar="ROUND", help="Round id, or `latest` (the most recently closed round)."
    ),
    top: int = typer.Option(10, "--top", "-n", min=1, help="Leaderboard rows to include."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file instead of standard output."
    ),
) -> None:
    """Print the Markdown write-up of a round: puzzle, solution, winners, leaderboard, statistics."""
    from bot.posts import writeup
    from bot.services.round_refs import RoundNotFound, resolve_round
    from bot.settings import get_settings
    from storage.db import DatabaseNotReady, check_database, session_factory, session_scope

    url = get_settings().db_url
    try:
        check_database(url)
        with session_scope(session_factory(url)) as session:
            round_ = resolve_round(session=session, ref=round_ref)
            markdown = writeup.build_post(session=session, round_id=round_.id, top_n=top)
    except (DatabaseNotReady, RoundNotFound) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if output is None:
        typer.echo(markdown, nl=False)
        return
    output.write_text(markdown, encoding="utf-8")
    typer.echo(f"wrote the write-up of round {round_.id} to {output}")


def register(app: typer.Typer) -> None:
    app.command("export-post")(export_post)
