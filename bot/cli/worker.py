"""``circuitboard worker``: a verification worker consuming the job queue."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command(name="worker")(worker)


def worker(
    queues: str = typer.Option(
        None,
        "--queues",
        "-Q",
        help="Comma-separated queues to consume: gpu, cpu. Default: gpu,cpu with CUDA, else cpu.",
    ),
    concurrency: int = typer.Option(
        1, "--concurrency", "-c", min=1, help="Jobs verified at once (one child process each)."
    ),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l", help="DEBUG, INFO, WARNING, ERROR."),
) -> None:
    """Start a verification worker (broker: CIRCUITBOARD_BROKER_URL, default the SQLite database)."""
    from bot.queue import QUEUES
    from bot.worker.tasks import run_worker

    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    if names is not None and (not names or set(names) - set(QUEUES)):
        raise typer.BadParameter(f"queues are {', '.join(QUEUES)}", param_hint="--queues")
    run_worker(queues=names, concurrency=concurrency, loglevel=loglevel.upper())
