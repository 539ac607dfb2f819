"""``circuitboard puzzles``: list, show, kit, train, import-legacy (thin: parse, call, print)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="The puzzle catalog: list, show, kit, train, import-legacy.", no_args_is_help=True
)


def _puzzle(slug: str):
    from puzzles.catalog import UnknownPuzzle, get_puzzle

    try:
        return get_puzzle(slug)
    except UnknownPuzzle as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("list")
def list_() -> None:
    """List the catalog with each model's held-out accuracy."""
    from rich.console import Console
    from rich.table import Table

    from puzzles.catalog import list_puzzles

    table = Table("slug", "title", "model", "held-out acc", "hints")
    for p in list_puzzles():
        m = p.model_config
        shape = f"{m.get('n_layers')}L {m.get('n_heads')}H d{m.get('d_model')}"
        shape += " attn-only" if m.get("attn_only") else " +MLP"
        table.add_row(p.slug, p.title, shape, f"{p.heldout_accuracy:.2%}", str(len(p.hints)))
    Console(width=120).print(table)


@app.command()
def show(slug: str = typer.Argument(..., help="Puzzle slug.")) -> None:
    """Show a puzzle's statement, model, metrics and verification settings."""
    import json

    p = _puzzle(slug)
    typer.echo(f"{p.title} ({p.slug}, v{p.version})\n{p.summary}\n")
    typer.echo(f"held-out accuracy: {p.heldout_accuracy:.2%}   hints: {len(p.hints)}")
    typer.echo(f"model: {json.dumps(p.model_config)}")
    typer.echo(f"metrics: {json.dumps(p.metrics)}")
    typer.echo(f"verify: {json.dumps(p.verify)}")
    typer.echo(f"weights: {p.weights_path} sha256 {p.weights_sha256}\n")
    typer.echo(p.description_md)


@app.command()
def kit(
    slug: str = typer.Argument(..., help="Puzzle slug."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Directory to write the kit into (default: ./SLUG-kit)."
    ),
) -> None:
    """Write the participant kit: README, weights, task code and a starter notebook."""
    p = _puzzle(slug)
    out = out or Path(f"{p.slug}-kit")
    from puzzles.kit import build_kit
    from puzzles.models import WeightsChecksumError

    try:
        files = build_kit(p, out)
    except WeightsChecksumError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for path in files:
        typer.echo(str(path))


@app.command()
def train(
    slug: str = typer.Argument(..., help="Puzzle slug."),
    seed: int | None = typer.Option(None, "--seed", help="Training seed (default: puzzle.toml's)."),
    steps: int | None = typer.Option(None, "--steps", help="Override the number of steps."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write weights + metrics here instead of the catalog entry."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train the puzzle model from scratch (deterministic, CPU); writes weights and metrics."""
    p = _puzzle(slug)
    from puzzles.training import train as train_model

    result = train_model(p, seed=seed, steps=steps, out_dir=out, progress=progress)
    typer.echo(
        f"{slug}: held-out accuracy {result.heldout_accuracy:.4f} after {result.steps_run} steps "
        f"in {result.train_seconds:.0f}s\nweights {result.weights_path}\nsha256 {result.weights_sha256}"
    )
    if out is None:
        typer.echo("puzzle.toml updated (weights sha256 and [metrics])")


@app.command("import-legacy")
def import_legacy(
    checkpoint: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="HookedTransformer .pt state dict."
    ),
    config: Path = typer.Option(
        ..., "--config", exists=True, dir_okay=False, help="HookedTransformerConfig JSON."
    ),
    slug: str = typer.Option(..., "--slug", help="Slug of the new catalog entry."),
    task: str = typer.Option(
        ..., "--task", help="Existing puzzle slug or path to a task.py for the data."
    ),
    title: str | None = typer.Option(None, "--title"),
    catalog_dir: Path | None = typer.Option(
        None, "--catalog-dir", help="Where to create the entry (default: the shipped catalog)."
    ),
) -> None:
    """Convert a legacy checkpoint (blocks.0.attn.W_Q ...) into a new catalog entry."""
    from puzzles.catalog import CATALOG_DIR, UnknownPuzzle
    from puzzles.legacy import LegacyImportError
    from puzzles.legacy import import_legacy as run_import

    try:
        puzzle = run_import(
            checkpoint,
            config,
            slug,
            task=task,
            title=title,
            catalog_root=catalog_dir or CATALOG_DIR,
        )
    except (LegacyImportError, UnknownPuzzle) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"imported {puzzle.slug} into {puzzle.path} (held-out accuracy {puzzle.heldout_accuracy:.2%}, "
        f"sha256 {puzzle.weights_sha256})"
    )
