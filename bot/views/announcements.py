"""What the monthly cycle posts: the round announcement, hints, the solutions post, admin notices,
and the hint-scheduling modal (a date-time picker).

Times in channel posts use Slack's ``<!date^...>`` token, so every reader sees them in their own
zone; admin-facing text uses the configured zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.views.blocks import (
    Block,
    clip,
    context,
    divider,
    header,
    message,
    section,
    sections,
)

if TYPE_CHECKING:
    from bot.services.round_data import RoundResults
    from puzzles.catalog import Puzzle
    from storage.models import Hint, Round

HINT_MODAL_CALLBACK = "hint_schedule"
HINT_TEXT_MAX = 2900


def slack_date(when: datetime, *, with_time: bool = True) -> str:
    """A Slack date token: rendered in the reader's zone, with a UTC fallback."""
    stamp = int(when.timestamp())
    fmt = "{date_long_pretty} at {time}" if with_time else "{date_long_pretty}"
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{stamp}^{fmt}|{fallback}>"


_HEADING = re.compile(r"^#{1,6}\s+(.*)$", re.MULTILINE)
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")


def markdown_to_mrkdwn(text: str) -> str:
    """The few Markdown constructs puzzle write-ups use, in Slack's mrkdwn dialect."""
    text = _HEADING.sub(lambda m: f"*{m[1].strip()}*", text)
    text = _BOLD.sub(lambda m: f"*{m[1]}*", text)
    return _LINK.sub(lambda m: f"<{m[2]}|{m[1]}>", text)


def _title(round_: Round, puzzle: Puzzle | None) -> str:
    return puzzle.title if puzzle is not None else round_.puzzle_version.title


def build_round_announcement(*, round_: Round, puzzle: Puzzle | None) -> dict[str, Any]:
    """Opening post: the puzzle, the kit, how to submit, the deadline."""
    title = _title(round_, puzzle)
    slug = round_.puzzle_version.slug
    deadline = slack_date(round_.closes_at)
    blocks: list[Block] = [header(f"New puzzle: {title}")]
    if puzzle is not None and puzzle.summary:
        blocks.append(section(f"_{puzzle.summary}_"))
    if puzzle is not None and puzzle.description_md.strip():
        blocks += sections(markdown_to_mrkdwn(puzzle.description_md), max_blocks=8)
    blocks += [
        divider(),
        section(
            f"*Kit*: `circuitboard puzzles kit {slug} --out {slug}-kit` writes the starter "
            "notebook, task code and model loader (`/puzzle` shows the puzzle any time). Check a "
            f"solution locally with `circuitboard verify solution.py --puzzle {slug}`."
        ),
        section(
            "*How to submit*: send me your `solution.py` or notebook (`.ipynb`) in a DM, or use "
            "`/puzzle submit`. It must define `predict(tokens)` and/or `CIRCUIT`; I verify it "
            "against the model and reply in the thread with your scores."
        ),
        section(f"*Deadline*: {deadline}. Hints will appear in this channel during the month."),
        context(f"Round #{round_.id} · puzzle `{slug}` v{round_.puzzle_version.version}"),
    ]
    return message(f"New puzzle: {title}. Deadline {deadline}.", blocks)


def build_hint_post(*, hint: Hint, number: int, round_: Round) -> dict[str, Any]:
    title = round_.puzzle_version.title
    text = markdown_to_mrkdwn(hint.text)
    blocks = [
        section(f":bulb: *Hint {number}* for *{title}*"),
        *sections(text, max_blocks=4),
        context(f"Deadline {slack_date(round_.closes_at)} · `/puzzle hints` lists all hints"),
    ]
    return message(f"Hint {number} for {title}: {clip(hint.text, 300)}", blocks)


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


_CREDIT_NAMES = {"best_solution": ":trophy: Best solution", "honourable_mention": ":medal: Mention"}


def build_solutions_post(
    *,
    round_: Round,
    puzzle: Puzzle | None,
    results: RoundResults,
    next_round: Round | None,
) -> dict[str, Any]:
    """Closing post: the reference write-up, the best verified solutions, credits, statistics."""
    title = _title(round_, puzzle)
    blocks: list[Block] = [header(f"Solutions: {title}")]
    if results.credits:
        lines = []
        for credit in results.credits:
            name = _CREDIT_NAMES.get(credit.kind, credit.kind)
            joint = " (joint)" if credit.joint else ""
            link = f" <{credit.link}|write-up>" if credit.link else ""
            note = f": {credit.note}" if credit.note else ""
            lines.append(f"{name}{joint}: <@{credit.user_id}>{note}{link}")
        blocks.append(section("*Credits*\n" + "\n".join(lines)))
    if results.best:
        lines = []
        for rank, entry in enumerate(results.best, start=1):
            link = f" · <{entry.writeup_url}|write-up>" if entry.writeup_url else ""
            lines.append(
                f"{rank}. <@{entry.user_id}>: private score {_score(entry.private_score)} "
                f"(public {_score(entry.public_score)}, {entry.checks_passed} checks){link}"
            )
        blocks.append(section("*Best verified solutions*\n" + "\n".join(lines)))
    else:
        blocks.append(section("*Best verified solutions*: none this round."))
    stats = (
        f"{results.submissions} submission(s) from {results.participants} participant(s); "
        f"{results.verified_passing} participant(s) passed verification, {results.solvers} "
        "passed every check."
    )
    blocks.append(section(f"*Statistics*: {stats}"))
    writeup = puzzle.writeup_md.strip() if puzzle is not None else ""
    if writeup:
        blocks += [divider(), section("*The mechanism* (reference write-up)")]
        blocks += sections(markdown_to_mrkdwn(writeup), max_blocks=20)
    footer = f"Round #{round_.id} closed {slack_date(round_.closes_at)}."
    if next_round is not None:
        footer += f" Next puzzle: *{next_round.puzzle_version.title}*, announced below."
    blocks.append(context(footer))
    return message(f"Solutions for {title}. {stats}", blocks)


def build_admin_notice(text: str) -> dict[str, Any]:
    return message(clip(text, 3000), [section(f":warning: {text}")])


# --- hint scheduling modal -------------------------------------------------------------------


def build_hint_modal(
    *, round_: Round, tz_name: str, hint: Hint | None = None, initial: datetime | None = None
) -> dict[str, Any]:
    """A ``views.open`` view: a date-time picker and the hint text (prefilled when editing)."""
    when = hint.release_at if hint is not None else initial or round_.opens_at
    metadata = f"{round_.id}:{hint.id if hint is not None else ''}"
    title = "Edit hint" if hint is not None else "Schedule a hint"
    return {
        "type": "modal",
        "callback_id": HINT_MODAL_CALLBACK,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            context(
                f"Round #{round_.id}: *{round_.puzzle_version.title}*, open "
                f"{slack_date(round_.opens_at)} to {slack_date(round_.closes_at)}. "
                f"The picker shows your own Slack time zone (admins' default: {tz_name})."
            ),
            {
                "type": "input",
                "block_id": "release_at",
                "label": {"type": "plain_text", "text": "Release at"},
                "element": {
                    "type": "datetimepicker",
                    "action_id": "value",
                    "initial_date_time": int(when.timestamp()),
                },
            },
            {
                "type": "input",
                "block_id": "text",
                "label": {"type": "plain_text", "text": "Hint"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": True,
                    "max_length": HINT_TEXT_MAX,
                    **({"initial_value": hint.text} if hint is not None else {}),
                },
            },
        ],
    }


def read_hint_modal(view: dict[str, Any]) -> tuple[int, int | None, datetime, str]:
    """``(round_id, hint_id or None, release_at UTC, text)`` from a submitted hint modal."""
    round_part, _, hint_part = (view.get("private_metadata") or ":").partition(":")
    values = view["state"]["values"]
    stamp = values["release_at"]["value"]["selected_date_time"]
    text = values["text"]["value"]["value"] or ""
    release_at = datetime.fromtimestamp(int(stamp), tz=UTC)
    return int(round_part), int(hint_part) if hint_part else None, release_at, text
