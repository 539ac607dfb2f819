"""``circuitboard db``: schema migrations and a health check."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Database schema: apply Alembic migrations, check health.", no_args_is_help=True
)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: head). Running it twice is a no-op."""
    from bot.settings import get_settings
    from storage.db import redact_url, upgrade_database

    settings = get_settings()
    settings.ensure_data_dir()
    upgrade_database(settings.db_url, revision=revision)
    typer.echo(f"database at {redact_url(settings.db_url)} is at {revision}")


@app.command()
def check() -> None:
    """Exit 0 if the database is reachable and fully migrated, 1 otherwise (the container health check)."""
    from bot.settings import get_settings
    from storage.db import DatabaseNotReady, check_database, redact_url

    url = get_settings().db_url
    try:
        revision = check_database(url)
    except DatabaseNotReady as exc:
        typer.echo(f"not ready: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"ok: database at {redact_url(url)} is at {revision}")
