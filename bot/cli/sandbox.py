"""``circuitboard sandbox check``: can this machine run submissions in the sandbox? (health check)"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="The submission sandbox: check that it can start here.", no_args_is_help=True
)


@app.command()
def check() -> None:
    """Start one sandbox as a job would; exit 0 if it works, 1 with the reason if it cannot.

    Docker's health check and admins use it; it takes about a second (no torch import).
    """
    from puzzles.verify.sandbox import describe_limits, self_check

    problem = self_check()
    if problem is not None:
        typer.echo(f"sandbox: cannot start: {problem}", err=True)
        raise typer.Exit(1)
    typer.echo(f"sandbox: ok; {describe_limits()}")
