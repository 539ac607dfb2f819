"""``circuitboard bot`` and ``circuitboard console``: the Slack app and its terminal twin."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command(name="bot")(bot)
    app.command(name="console")(console)


def bot() -> None:
    """Run the Slack app (Socket Mode by default)."""
    typer.echo("the Slack app is not available yet", err=True)
    raise typer.Exit(2)


def console() -> None:
    """A terminal chat driving the same services as Slack."""
    typer.echo("the console adapter is not available yet", err=True)
    raise typer.Exit(2)
