"""``circuitboard puzzles``: list, show, kit, train, calibrate, import-legacy (thin: parse, call,
print)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="The puzzle catalog: list, show, kit, train, calibrate, import-legacy.",
    no_args_is_help=True,
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
    _print_calibration(p)
    typer.echo(p.description_md)


def _print_calibration(p) -> None:
    """The numbers behind each threshold, from calibration.json (or say there is none)."""
    import json

    path = p.path / "calibration.json"
    if not path.is_file():
        typer.echo(f"calibration: none (run `circuitboard puzzles calibrate {p.slug}`)\n")
        return
    _render_calibration(json.loads(path.read_text(encoding="utf-8")))


def _render_calibration(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    rep = doc["replication"]
    typer.echo(
        f"calibration: {doc['n_seeds']} seeds in {doc['seconds']:.0f}s on {doc['device']}; "
        f"reference passes {rep['reference_pass_rate']:.1%} of seeds (95% lower bound "
        f"{rep['reference_pass_rate_lower95']:.1%}), task rule {rep['task_rule_pass_rate']:.1%} "
        f"(upper bound {rep['task_rule_pass_rate_upper95']:.1%})"
    )
    table = Table(
        "threshold", "value", "reference min / median", "task rule median / max", "margins"
    )
    for key, entry in doc["thresholds"].items():
        if "score" not in entry:
            table.add_row(key, f"{entry['value']:.3f}", "-", "-", entry.get("why", ""))
            continue
        ref = doc["scores"]["reference"][entry["score"]]
        rule = doc["scores"]["task_rule"][entry["score"]]
        rule_cells = f"{rule['median']:.3f} / {rule['max']:.3f}" if rule.get("n") else "-"
        margin = f"ref +{entry['margin_reference']:.3f}"
        if entry.get("margin_task_rule") is not None:
            margin += f", rule {-entry['margin_task_rule']:+.3f}"
        if not entry["separates_task_rule"]:
            margin += " (does not separate)"
        table.add_row(
            key,
            f"{entry['value']:.3f}",
            f"{ref['min']:.3f} / {ref['median']:.3f}",
            rule_cells,
            margin,
        )
    circuit = doc.get("circuit", {})
    Console(width=120).print(table)
    if circuit.get("n_seeds"):
        rows = Table("circuit baseline", "faithfulness median", "passes", "95% upper bound")
        entries = [
            ("reference", circuit["reference"]),
            ("every component", circuit["every_component"]),
        ]
        entries += [(f"reference - {n}", b) for n, b in circuit["reference_minus"].items()]
        entries.append(("random, reference size", circuit["random_same_size"]))
        for name, block in entries:
            f = block["faithfulness"]
            rows.add_row(
                name,
                f"{f['median']:.3f}" if f.get("n") else "n/a",
                f"{block['pass_rate']:.1%} of {block['n']}",
                f"{block['pass_rate_upper95']:.1%}",
            )
        Console(width=120).print(rows)
        bar = circuit.get("faithfulness")
        if bar and bar.get("reference_lower_bound") is not None:
            typer.echo(
                f"faithfulness bar: random circuits' upper bound {bar['random_upper_bound']:.3f}, "
                f"the reference's lower bound {bar['reference_lower_bound']:.3f}; "
                f"the threshold ({circuit['faithfulness_threshold']:.2f}) must lie between"
                + ("" if bar["separates_random"] else " (they do not separate)")
            )
    causal = doc.get("causal")
    if causal:
        t, ref = causal["thresholds"], causal["reference_passes"]
        wrong = causal["wrong_claims_holding"]
        default = "" if causal["attention"].get("separates") else " (default, not calibrated)"
        typer.echo(
            f"causal ({causal['n_seeds']} seeds): holds at IIA >= {t['causal_holds']:.3f}, partly "
            f">= {t['causal_partly']:.3f}; attention {t['attention_holds']:.3f}{default}; scrubbing "
            f"{t['causal_scrub_holds']:.3f}; reference holds on {ref['k']}/{ref['n']} seeds, "
            f"{wrong['k']} of {wrong['n']} wrong claims hold"
        )
    typer.echo("")


@app.command()
def calibrate(
    slug: str = typer.Argument(..., help="Puzzle slug."),
    seeds: int = typer.Option(200, "--seeds", min=1, help="Number of calibration seeds."),
    circuit_seeds: int | None = typer.Option(
        None, "--circuit-seeds", min=0, help="Run the circuit baselines on the first N seeds only."
    ),
    random_circuits: int = typer.Option(5, "--random-circuits", min=0, help="Per seed."),
    device: str = typer.Option("cpu", "--device"),
    write: bool = typer.Option(
        True, "--write/--dry-run", help="Write calibration.json and the thresholds in puzzle.toml."
    ),
    causal_only: bool = typer.Option(
        False,
        "--causal-only",
        help="Only the causal thresholds: the reference hypothesis against the wrong ones.",
    ),
    causal: bool = typer.Option(
        True,
        "--causal/--no-causal",
        help="Also recalibrate the causal thresholds (--no-causal keeps calibration.json's).",
    ),
    circuit_only: bool = typer.Option(
        False,
        "--circuit-only",
        help="Only the circuit baselines, on --circuit-seeds seeds (default 20): after a CIRCUIT "
        "change; the rest of calibration.json is kept.",
    ),
) -> None:
    """Score the reference and the baselines over many seeds; set thresholds from the bounds."""
    p = _puzzle(slug)
    import sys

    if causal_only:
        _calibrate_causal(p, seeds, write)
        return

    from rich.progress import Progress

    from puzzles.verify.calibration import calibrate as run_calibration
    from puzzles.verify.calibration import write_calibration

    log = _seed_logger(slug)

    if circuit_only:
        _calibrate_circuits(p, circuit_seeds or 20, random_circuits, device, write, log)
        return

    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        job = bar.add_task(f"calibrating {slug}", total=seeds)
        doc = run_calibration(
            p,
            n_seeds=seeds,
            circuit_seeds=circuit_seeds,
            random_circuits=random_circuits,
            device=device,
            causal=causal,
            progress=(lambda done, total: bar.update(job, completed=done))
            if sys.stderr.isatty()
            else log,
        )
    rep = doc["replication"]
    separates = (
        rep["task_rule_pass_rate"] == 0 and rep["reference_pass_rate"] >= doc["target_pass_rate"]
    )
    if write:
        # Thresholds that let the task rule through, or fail the reference, are not written:
        # the bar stays where it was and calibration.json shows why.
        path = write_calibration(p, doc, update_toml=separates)
        what = (
            "and the replication thresholds in puzzle.toml" if separates else "(puzzle.toml kept)"
        )
        typer.echo(f"wrote {path} {what}")
    _render_calibration(doc)
    if not separates:
        typer.echo(
            "warning: no thresholds pass the reference on 99.5% of seeds while failing the task "
            "rule on every seed; see calibration.json",
            err=True,
        )
        raise typer.Exit(1)


def _seed_logger(slug: str):
    """Progress as one line per seed, for a log file (a terminal gets a progress bar)."""
    import time

    started = time.perf_counter()

    def log(done: int, total: int) -> None:
        elapsed = time.perf_counter() - started
        typer.echo(
            f"{slug}: seed {done}/{total} after {elapsed:.0f}s ({elapsed / done:.1f}s/seed)",
            err=True,
        )

    return log


def _calibrate_circuits(p, seeds: int, random_circuits: int, device: str, write: bool, log) -> None:
    from puzzles.verify.calibration import calibrate_circuits, load_calibration, write_calibration

    section = calibrate_circuits(
        p, n_seeds=seeds, random_circuits=random_circuits, device=device, progress=log
    )
    if write:
        typer.echo(f"wrote {write_calibration(p, {'circuit': section})} (circuit section only)")
    _render_calibration({**(load_calibration(p) or {}), "circuit": section})


def _calibrate_causal(p, seeds: int, write: bool) -> None:
    """The ``causal`` section alone (calibration.json keeps its other sections)."""
    import json

    from puzzles.verify.calibration import load_calibration, write_calibration
    from puzzles.verify.causal_calibration import calibrate_causal, toml_values
    from puzzles.verify.wrong_hypotheses import WRONG

    if not (p.path / "hypothesis.py").is_file() or p.slug not in WRONG:
        typer.echo(
            f"{p.slug} has no reference hypothesis with wrong variants to calibrate", err=True
        )
        raise typer.Exit(2)
    section = calibrate_causal(p, n_seeds=seeds)
    typer.echo(
        json.dumps(
            {
                k: section[k]
                for k in (
                    "iia",
                    "attention",
                    "scrubbing",
                    "thresholds",
                    "reference_passes",
                    "wrong_claims_holding",
                )
            },
            indent=2,
        )
    )
    values = toml_values(section)
    if write:
        old = load_calibration(p)
        if old is None:
            typer.echo("no calibration.json yet: run the full calibration first", err=True)
            raise typer.Exit(1)
        path = write_calibration(p, {**old, "causal": section}, update_toml=False)
        typer.echo(
            f"wrote {path}"
            + (" and the causal thresholds in puzzle.toml" if values else " (puzzle.toml kept)")
        )
    if values is None:
        typer.echo("warning: the reference and the wrong hypotheses do not separate", err=True)
        raise typer.Exit(1)


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
