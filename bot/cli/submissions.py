"""``circuitboard submissions``: list, show, re-verify, sweep."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Submissions and their verdicts: list, show, reverify, sweep.", no_args_is_help=True
)


def _factory():  # type: ignore[no-untyped-def]
    from bot.settings import get_settings
    from storage.db import session_factory

    return session_factory(get_settings().db_url)


@app.command("list")
def list_(
    round_id: int = typer.Option(None, "--round", "-r", help="Only this round."),
    user: str = typer.Option(None, "--user", "-u", help="Only this Slack user id."),
    status: str = typer.Option(None, "--status", "-s", help="received, queued, running, ..."),
    limit: int = typer.Option(50, "--limit", "-n", min=1),
) -> None:
    """The newest submissions, one line each."""
    from bot.services import submissions
    from bot.views.escape import terminal
    from storage.db import session_scope
    from storage.models import SubmissionStatus

    try:
        wanted = SubmissionStatus(status) if status else None
    except ValueError:
        names = ", ".join(s.value for s in SubmissionStatus)
        raise typer.BadParameter(f"status is one of {names}", param_hint="--status") from None
    with session_scope(_factory()) as session:
        rows = submissions.recent(
            session=session, round_id=round_id, user_id=user, status=wanted, limit=limit
        )
        if not rows:
            typer.echo("no submissions")
        for row in rows:
            stage = f" ({row.stage})" if row.stage and row.status == "running" else ""
            if row.status == SubmissionStatus.VERIFIED and row.verdicts:
                # verified = a verdict was recorded; whether it passed is what a reader asks
                stage = " (passed)" if row.verdicts[-1].passed else " (did not pass)"
            typer.echo(
                f"#{row.id}  round {row.round_id}  {terminal(row.user_id)}  {terminal(row.filename)}  "
                f"{row.status}{stage}  attempts {row.attempts}  {row.created_at:%Y-%m-%d %H:%M}"
            )


@app.command()
def show(
    submission_id: int = typer.Argument(..., help="Submission id."),
    as_json: bool = typer.Option(
        False, "--json", help="Every verdict's full JSON (scores, checks) and the stage timings."
    ),
) -> None:
    """One submission: its state, lease, every verdict and when it reached each stage (upload
    acknowledged ... each post sent), text from the upload made inert."""
    from bot.services import submissions, timings
    from bot.views.escape import terminal
    from storage.db import session_scope

    with session_scope(_factory()) as session:
        row = submissions.get(session=session, submission_id=submission_id)
        if row is None:
            typer.echo(f"no submission #{submission_id}", err=True)
            raise typer.Exit(1)
        marks = timings.timeline(session=session, submission_id=row.id)
        if as_json:
            typer.echo(_json(session, row, marks))
            return
        typer.echo(
            f"submission #{row.id}: {terminal(row.filename)} by {terminal(row.user_id)}, "
            f"round {row.round_id}"
        )
        typer.echo(f"  status {row.status}, stage {row.stage or '-'}, attempts {row.attempts}")
        typer.echo(f"  queue {row.queue or '-'}, sha256 {row.blob_sha256}")
        if row.lease_owner:
            typer.echo(f"  lease {row.lease_owner} until {row.lease_expires_at or '-'}")
        if row.message:
            typer.echo(f"  message: {terminal(row.message)}")
        for verdict in submissions.verdicts(session=session, submission_id=row.id):
            outcome = "passed" if verdict.passed else "not passed"
            typer.echo(
                f"  verdict attempt {verdict.attempt}: {outcome}, {verdict.checks_passed} checks, "
                f"score {verdict.public_score}, {verdict.runtime_s or 0:.1f} s on {verdict.device}, "
                f"engine {verdict.engine_version}, {verdict.created_at:%Y-%m-%d %H:%M}"
            )
        if marks:
            typer.echo(f"  timings (from {marks[0].at:%Y-%m-%d %H:%M:%S.%f} UTC):")
            for line in timings.format_lines(marks):
                typer.echo(f"    {line}")


def _json(session, row, marks) -> str:  # type: ignore[no-untyped-def]
    """The admins' view of a submission: its verdicts' JSON and its timings, machine-readable."""
    import json

    from bot.services import submissions, timings

    verdicts = [
        {
            "attempt": v.attempt,
            "passed": v.passed,
            "checks_passed": v.checks_passed,
            "public_score": v.public_score,
            "private_score": v.private_score,
            "runtime_s": v.runtime_s,
            "device": v.device,
            "engine_version": v.engine_version,
            "created_at": v.created_at.isoformat(),
            "scores": v.scores,
            "timings": timings.as_json([m for m in marks if m.attempt in (0, v.attempt)]),
        }
        for v in submissions.verdicts(session=session, submission_id=row.id)
    ]
    doc = {
        "id": row.id,
        "round_id": row.round_id,
        "user_id": row.user_id,
        "filename": row.filename,
        "status": str(row.status),
        "attempts": row.attempts,
        "verdicts": verdicts,
        "timings": timings.as_json(marks),
    }
    return json.dumps(doc, indent=2, default=str)


@app.command()
def reverify(
    round_id: int = typer.Option(None, "--round", "-r", help="Every finished submission of it."),
    submission_id: int = typer.Option(None, "--submission", "-s", help="One submission."),
) -> None:
    """Queue verification again; new verdicts are kept beside the old ones."""
    from bot.flows import submission as submission_flow

    if (round_id is None) == (submission_id is None):
        raise typer.BadParameter("give exactly one of --round or --submission")
    if submission_id is not None:
        try:
            status = submission_flow.reverify(
                session_factory=_factory(), submission_id=submission_id, requested_by="cli"
            )
        except LookupError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from None
        typer.echo(f"#{submission_id} is {status}")
        return
    ids = submission_flow.reverify_round(
        session_factory=_factory(), round_id=round_id, requested_by="cli"
    )
    typer.echo(f"{len(ids)} submissions of round {round_id} queued for re-verification")


@app.command()
def sweep() -> None:
    """Recover lost jobs once (the scheduler does this periodically)."""
    from bot.flows import submission as submission_flow

    result = submission_flow.sweep(session_factory=_factory())
    typer.echo(
        f"requeued {len(result.requeued)}, re-sent {len(result.resent)}, "
        f"failed {len(result.failed)}, promoted {len(result.promoted)}"
    )
