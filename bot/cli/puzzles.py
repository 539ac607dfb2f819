"""``circuitboard puzzles``."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="The puzzle catalog: list, show, kit, train, import-legacy.", no_args_is_help=True
)
