"""Messages about one submission: live status, the verdict, the spoiler-free channel line, `/puzzle me`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.views.blocks import context, header, message, section, sections
from bot.views.escape import mrkdwn, mrkdwn_code, report_mrkdwn
from storage.models import Submission, SubmissionStatus, Verdict

_STATUS_ICON = {
    SubmissionStatus.RECEIVED: ":inbox_tray:",
    SubmissionStatus.QUEUED: ":hourglass_flowing_sand:",
    SubmissionStatus.RUNNING: ":gear:",
    SubmissionStatus.VERIFIED: ":white_check_mark:",
    SubmissionStatus.FAILED: ":warning:",
    SubmissionStatus.REJECTED: ":no_entry:",
    SubmissionStatus.CANCELLED: ":heavy_multiplication_x:",
}


def status_line(submission: Submission) -> str:
    """One line saying where a submission is, e.g. ``:gear: running: circuit``."""
    status = SubmissionStatus(submission.status)
    reason = mrkdwn(submission.message)  # may quote the submission's own output
    icon = _STATUS_ICON.get(status, "")
    text = {
        SubmissionStatus.RECEIVED: "received, waiting for a worker",
        SubmissionStatus.QUEUED: "queued for verification",
        SubmissionStatus.RUNNING: "running" + (f": {submission.stage}" if submission.stage else ""),
        SubmissionStatus.VERIFIED: "verified (see the verdict below)",
        SubmissionStatus.FAILED: "could not be verified" + (f": {reason}" if reason else ""),
        SubmissionStatus.REJECTED: "rejected" + (f": {reason}" if reason else ""),
        SubmissionStatus.CANCELLED: "cancelled",
    }[status]
    if status == SubmissionStatus.VERIFIED and submission.verdicts:
        passed = submission.verdicts[-1].passed
        icon = ":white_check_mark:" if passed else ":x:"
        text = "verified: " + ("passed" if passed else "did not pass") + " (verdict in this thread)"
    return f"{icon} {text}".strip()


def build_status_message(submission: Submission) -> dict[str, Any]:
    line = status_line(submission)
    title = f"Submission #{submission.id} `{mrkdwn_code(submission.filename)}`"
    return message(
        f"Submission #{submission.id}: {line}",
        [section(f"*{title}*\n{line}"), context(f"attempt {submission.attempts or 0}")],
    )


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def build_verdict_message(submission: Submission, verdict: Verdict) -> dict[str, Any]:
    """The full verdict, for the submitter only (their DM thread)."""
    outcome = "passed :tada:" if verdict.passed else "did not pass"
    blocks = [header(f"Verdict for submission #{submission.id}: {outcome}")]
    blocks.append(
        section(
            f"*checks passed:* {verdict.checks_passed}   *score:* {_score(verdict.public_score)}"
            f"   *runtime:* {verdict.runtime_s or 0:.1f}s on {verdict.device or 'cpu'}"
        )
    )
    blocks.extend(sections(report_mrkdwn(verdict.report_md or "_no report_"), max_blocks=10))
    blocks.append(context(f"engine {verdict.engine_version or '?'} · attempt {verdict.attempt}"))
    return message(f"Submission #{submission.id} {outcome}", blocks)


def build_failure_message(submission: Submission) -> dict[str, Any]:
    line = status_line(submission)
    return message(f"Submission #{submission.id}: {line}", [section(line)])


def build_channel_verified_line(user_id: str) -> dict[str, Any]:
    """What the round's channel sees: who verified, nothing about the mechanism."""
    text = f"<@{user_id}> verified a solution :white_check_mark:"
    return message(text, [section(text)])


def build_my_submissions(
    submissions: Sequence[Submission], *, best_score: float | None
) -> dict[str, Any]:
    if not submissions:
        return message(
            "You have no submissions yet.",
            [
                section(
                    "You have no submissions yet. DM me a `.py`/`.ipynb` file or use `/puzzle submit`."
                )
            ],
        )
    lines = [f"#{s.id} `{mrkdwn_code(s.filename)}` — {status_line(s)}" for s in submissions[:20]]
    blocks = [header("Your submissions"), section("\n".join(lines))]
    blocks.append(context(f"best score: {_score(best_score)}"))
    return message(f"You have {len(submissions)} submissions.", blocks)
