"""``circuitboard db``: schema migrations."""

from __future__ import annotations

import typer

app = typer.Typer(help="Database schema: apply Alembic migrations.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: head). Running it twice is a no-op."""
    from storage.db import upgrade_database

    from bot.settings import get_settings

    settings = get_settings()
    settings.ensure_data_dir()
    upgrade_database(settings.db_url, revision=revision)
    typer.echo(f"database at {settings.db_url.split('@')[-1]} is at {revision}")
