"""The ``circuitboard`` command line: thin commands that parse, call the library and print.

Each command group lives in its own module here and is mounted below. Heavy imports (torch,
Slack, Celery) happen inside the commands so ``circuitboard --help`` stays instant.
"""

from __future__ import annotations

import typer

from bot.cli import db, puzzles, rounds, run, verify, worker
from bot.cli import export as export_cli
from bot.cli import sandbox as sandbox_cli
from bot.cli import slackbot as slackbot_cli
from bot.cli import submissions as submissions_cli

app = typer.Typer(
    name="circuitboard",
    help="Run the monthly mech-interp puzzle: Slack bot, verification workers, catalog and CLI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print the installed circuitboard version."""
    from importlib.metadata import version as dist_version

    typer.echo(f"circuitboard {dist_version('circuitboard')}")


app.add_typer(db.app, name="db")
app.add_typer(puzzles.app, name="puzzles")
app.add_typer(rounds.app, name="rounds")
app.add_typer(submissions_cli.app, name="submissions")
app.add_typer(sandbox_cli.app, name="sandbox")
verify.register(app)
worker.register(app)
slackbot_cli.register(app)
run.register(app)
export_cli.register(app)


def main() -> None:
    app()
