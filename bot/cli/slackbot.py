"""``circuitboard bot`` and ``circuitboard console``: the Slack app and its terminal twin."""

from __future__ import annotations

import logging

import typer


def register(app: typer.Typer) -> None:
    app.command(name="bot")(bot)
    app.command(name="console")(console)


def bot(
    http: bool = typer.Option(
        False, "--http", help="Serve Slack's signed HTTP requests instead of Socket Mode."
    ),
    port: int = typer.Option(3000, "--port", help="HTTP mode: port for /slack/events."),
    host: str = typer.Option("0.0.0.0", "--host", help="HTTP mode: interface to listen on."),
) -> None:
    """Run the Slack app (Socket Mode with CIRCUITBOARD_SLACK_APP_TOKEN, or --http)."""
    from bot.app import run_http, run_socket_mode
    from bot.scheduler import start_scheduler
    from bot.settings import get_settings
    from storage.db import upgrade_database

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = get_settings()
    if settings.slack_bot_token is None:
        typer.echo(
            "CIRCUITBOARD_SLACK_BOT_TOKEN is not set; see README 'Slack setup', "
            "or try `circuitboard console`.",
            err=True,
        )
        raise typer.Exit(2)
    settings.ensure_data_dir()
    upgrade_database(settings.db_url)
    if http and settings.slack_signing_secret is None:
        typer.echo("HTTP mode needs CIRCUITBOARD_SLACK_SIGNING_SECRET", err=True)
        raise typer.Exit(2)
    if not http and settings.slack_app_token is None:
        typer.echo(
            "Socket Mode needs CIRCUITBOARD_SLACK_APP_TOKEN (xapp-...), or use --http", err=True
        )
        raise typer.Exit(2)
    # The bot process runs the monthly cycle and the lease sweeper too (one scheduler per
    # database: a second bot stands by); the app's outbox dispatcher sends what it queues.
    scheduler = start_scheduler(settings=settings)
    try:
        if http:
            run_http(settings, host=host, port=port)
        else:
            run_socket_mode(settings)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    finally:
        scheduler.stop()


def console(
    user: str | None = typer.Option(
        None,
        "--as",
        help="Act as this Slack user id, with their own role (a participant unless an admin).",
    ),
    admin: bool = typer.Option(
        False, "--admin", help="Make the --as user an admin for this session."
    ),
    worker: bool = typer.Option(
        True, "--worker/--no-worker", help="Start a local verification worker beside the console."
    ),
) -> None:
    """A terminal chat driving the same services as Slack (no Slack token needed).

    Without --as you are UCONSOLE, an admin; with --as you see what that user sees.
    """
    from bot.console import CONSOLE_USER, run_console
    from bot.settings import get_settings

    logging.basicConfig(level=logging.WARNING)
    run_console(
        get_settings(),
        user_id=user or CONSOLE_USER,
        start_worker=worker,
        admin=admin or user is None,
    )
