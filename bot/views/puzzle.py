"""`/puzzle`, `/puzzle hints`, `/puzzle help`, the submit modal: participant-facing Block Kit."""

from __future__ import annotations

from typing import Any

from bot import grammar
from bot.services.overview_data import RoundOverview
from bot.views.announcements import markdown_to_mrkdwn
from bot.views.blocks import (
    MODAL_TITLE_MAX,
    Block,
    clip,
    context,
    divider,
    header,
    message,
    section,
    sections,
)

SUBMIT_MODAL_CALLBACK = "submit_solution"
FILE_BLOCK = "solution_file"
FILE_ACTION = "file"
WRITEUP_BLOCK = "writeup"
WRITEUP_ACTION = "url"

HELP_LINES = grammar.help_lines(admin=False)
ADMIN_HELP_LINES = grammar.help_lines(admin=True)


def countdown(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h left"
    if hours:
        return f"{hours}h {minutes}m left"
    return f"{minutes}m left"


def round_blocks(overview: RoundOverview, *, with_description: bool = True) -> list[Block]:
    """The current round: title, countdown, description, kit, released hints."""
    if overview.round is None:
        return [section("There is no open round right now. The next puzzle is announced soon.")]
    round_ = overview.round
    title = overview.puzzle_title or (
        overview.puzzle.title if overview.puzzle else "this month's puzzle"
    )
    blocks: list[Block] = [header(f"Puzzle of the month: {title}")]
    closes = round_.closes_at.strftime("%Y-%m-%d %H:%M UTC")
    blocks.append(
        context(f"Closes {closes} · {countdown(overview.seconds_left)} · round #{round_.id}")
    )
    if overview.puzzle is not None:
        if overview.puzzle.summary:
            blocks.append(section(overview.puzzle.summary))
        if with_description:
            blocks.extend(
                sections(markdown_to_mrkdwn(overview.puzzle.description_md), max_blocks=6)
            )
        slug = overview.puzzle.slug
        blocks.append(
            section(
                f"*Kit:* `circuitboard puzzles kit {slug}` writes the starter notebook, task and "
                f"model loader to `./{slug}-kit/`; check locally with `circuitboard verify solution.py --puzzle {slug}`."
            )
        )
    blocks.extend(hint_blocks(overview))
    blocks.append(context("Submit: DM me a `.py`/`.ipynb` file, or `/puzzle submit`."))
    return blocks


def hint_blocks(overview: RoundOverview) -> list[Block]:
    if overview.round is None:
        return []
    if not overview.hints:
        return [section("_No hints released yet._")]
    blocks: list[Block] = [divider(), section("*Hints so far*")]
    for hint in overview.hints[:10]:
        blocks.append(section(f"*Hint {hint.position}.* {hint.text}"))
    return blocks


def build_puzzle_message(overview: RoundOverview) -> dict[str, Any]:
    title = overview.puzzle_title or "no open round"
    return message(f"Puzzle of the month: {title}", round_blocks(overview))


def build_hints_message(overview: RoundOverview) -> dict[str, Any]:
    if overview.round is None:
        return message("No open round.", round_blocks(overview))
    return message(
        f"{len(overview.hints)} hints released", [header("Hints"), *hint_blocks(overview)]
    )


def build_help_message(*, is_admin: bool = False, unknown: str | None = None) -> dict[str, Any]:
    lines = [f"{cmd}: {what}" for cmd, what in HELP_LINES]
    blocks: list[Block] = []
    if unknown:
        blocks.append(section(f"I don't know `{clip(unknown, 100)}`. Here is what I can do:"))
    blocks.append(section("\n".join(lines)))
    blocks.append(context("Or DM me a `.py`/`.ipynb` solution file to submit it."))
    if is_admin:
        blocks.append(section("*Admin*\n" + "\n".join(f"{c}: {w}" for c, w in ADMIN_HELP_LINES)))
    return message("circuitboard help", blocks)


def build_error_message(text: str) -> dict[str, Any]:
    return message(text, [section(f":warning: {text}")])


def build_info_message(text: str) -> dict[str, Any]:
    return message(text, [section(text)])


def build_submit_modal(*, puzzle_title: str | None, private_metadata: str = "") -> dict[str, Any]:
    """A modal with a file input (.py/.ipynb) and an optional write-up link."""
    return {
        "type": "modal",
        "callback_id": SUBMIT_MODAL_CALLBACK,
        "private_metadata": private_metadata,
        "title": {"type": "plain_text", "text": clip("Submit a solution", MODAL_TITLE_MAX)},
        "submit": {"type": "plain_text", "text": "Submit"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"Solution for *{puzzle_title or 'the current puzzle'}*."),
            {
                "type": "input",
                "block_id": FILE_BLOCK,
                "label": {"type": "plain_text", "text": "Solution file (.py or .ipynb)"},
                "element": {
                    "type": "file_input",
                    "action_id": FILE_ACTION,
                    "filetypes": ["py", "ipynb"],
                    "max_files": 1,
                },
            },
            {
                "type": "input",
                "block_id": WRITEUP_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Write-up link (optional)"},
                "element": {
                    "type": "url_text_input",
                    "action_id": WRITEUP_ACTION,
                    "placeholder": {"type": "plain_text", "text": "https://..."},
                },
            },
        ],
    }


def build_error_modal(text: str) -> dict[str, Any]:
    """A modal that only explains why the requested form cannot be shown."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "circuitboard"},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [section(f":warning: {text}")],
    }
