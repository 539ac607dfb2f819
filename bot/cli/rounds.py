"""``circuitboard rounds``."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Monthly rounds: plan, list, show, reschedule, cancel.", no_args_is_help=True
)
