"""``circuitboard verify FILE --puzzle SLUG``: check a solution locally before uploading it."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command(name="verify")(verify)


def verify(
    file: Path = typer.Argument(..., help="A .py or .ipynb submission."),
    puzzle: str = typer.Option(..., "--puzzle", "-p", help="Puzzle slug."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
    plot: Path | None = typer.Option(None, "--plot", help="Write the verdict plot (PNG) here."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    seed: int | None = typer.Option(
        None, "--seed", help="Held-out seed (default: the puzzle's public self-check seed)."
    ),
    unsafe_no_sandbox: bool = typer.Option(
        False,
        "--unsafe-no-sandbox",
        help="Run the code without bubblewrap. Only for your OWN code on a machine without bwrap.",
    ),
) -> None:
    """Verify FILE against the puzzle model (exit 0 pass, 1 fail, 2 bad input)."""
    from puzzles.catalog import UnknownPuzzle, get_puzzle
    from puzzles.verify import SandboxUnavailable, verify_submission

    try:
        target = get_puzzle(puzzle)
    except UnknownPuzzle as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    try:
        source = file.read_bytes()
    except OSError as exc:
        typer.echo(f"cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        typer.echo("--device must be cpu or cuda", err=True)
        raise typer.Exit(2)
    try:
        verdict = verify_submission(
            source, file.name, target, seed=seed, device=device, sandbox=not unsafe_no_sandbox
        )
    except SandboxUnavailable as exc:
        typer.echo(f"{exc}", err=True)
        raise typer.Exit(2) from None
    if plot is not None and verdict.plot_png:
        plot.write_bytes(verdict.plot_png)
    if as_json:
        data = verdict.to_json()
        data.pop("plot_png", None)
        typer.echo(json.dumps(data, indent=2))
    else:
        from bot.views.escape import terminal

        typer.echo(terminal(verdict.report_md))  # the report quotes the submission's output
    if verdict.error_kind == "input":
        raise typer.Exit(2)
    raise typer.Exit(0 if verdict.passed else 1)
