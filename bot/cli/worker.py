"""``circuitboard worker``: a verification worker consuming the job queue."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command(name="worker")(worker)


def worker() -> None:
    """Start a verification worker."""
    typer.echo("the job queue is not available yet", err=True)
    raise typer.Exit(2)
