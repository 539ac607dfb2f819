"""``circuitboard run``: the whole system in one command on the embedded default."""

from __future__ import annotations

import logging

import typer


def register(app: typer.Typer) -> None:
    app.command(name="run")(run)


def run(
    demo: bool = typer.Option(
        False,
        "--demo",
        help="Seed a round with a catalog puzzle and verify its reference solution.",
    ),
    worker: bool = typer.Option(
        True, "--worker/--no-worker", help="Start a local verification worker beside the bot."
    ),
) -> None:
    """Migrate, then run worker + scheduler + console (no Slack token) or Socket Mode (tokens set).

    With --demo and no terminal on standard input it runs the demo to the verdict, prints it and
    exits (0 when the reference solution passed).
    """
    from bot.embedded import run_system
    from bot.settings import get_settings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    raise typer.Exit(run_system(get_settings(), demo=demo, worker=worker))
