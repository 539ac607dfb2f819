"""``circuitboard sandbox check``: can this machine run submissions in the sandbox? (health check)"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="The submission sandbox: check that it can start here.", no_args_is_help=True
)


@app.command()
def check() -> None:
    """Start one sandbox as a job would; exit 0 if it works, 1 with the reason if it cannot.

    The workers' Docker health check uses it (compose.yaml): bubblewrap must be able to create its
    namespaces in the container, or every verification would end "unavailable".
    """
    from puzzles.verify.sandbox import Sandbox, SandboxError, SandboxUnavailable

    try:
        box = Sandbox()
        try:
            box.wait_ready()
        finally:
            box.close()
    except (SandboxUnavailable, SandboxError, OSError) as exc:
        typer.echo(f"sandbox: cannot start: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("sandbox: ok")
