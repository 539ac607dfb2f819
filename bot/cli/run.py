"""``circuitboard run``: the whole system in one command on the embedded default."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command(name="run")(run)


def run(
    demo: bool = typer.Option(
        False, "--demo", help="Seed a round and verify its reference solution."
    ),
) -> None:
    """Migrate the database, then run the embedded system."""
    from bot.cli.db import upgrade

    upgrade("head")
