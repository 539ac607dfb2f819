"""Small Block Kit constructors that keep every text inside Slack's limits.

Slack rejects a whole message when one field is too long, so the builders truncate here rather
than hoping the content is short (a verdict report or a puzzle description can be long).
"""

from __future__ import annotations

from typing import Any

Block = dict[str, Any]

SECTION_TEXT_MAX = 3000
HEADER_TEXT_MAX = 150
CONTEXT_ELEMENT_MAX = 2000
BUTTON_TEXT_MAX = 75
MESSAGE_TEXT_MAX = 40000
MESSAGE_BLOCKS_MAX = 50
HOME_BLOCKS_MAX = 100
MODAL_BLOCKS_MAX = 100
MODAL_TITLE_MAX = 24


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marking the cut with an ellipsis.

    Never inside a ``<...>`` link, mention or channel (half a link breaks the whole message's
    formatting): the cut moves back before it, or to the last line end if that is close.
    """
    if len(text) <= limit:
        return text
    cut = limit - 1
    opened = text.rfind("<", 0, cut)
    if opened > text.rfind(">", 0, cut):
        cut = opened
    line_end = text.rfind("\n", 0, cut)
    if line_end >= cut - 200 and line_end > 0:
        cut = line_end
    return text[:cut].rstrip() + "…"


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_TEXT_MAX)}}


def section(text: str, *, accessory: Block | None = None, block_id: str | None = None) -> Block:
    block: Block = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": clip(text or " ", SECTION_TEXT_MAX)},
    }
    if accessory:
        block["accessory"] = accessory
    if block_id:
        block["block_id"] = block_id
    return block


def sections(text: str, *, max_blocks: int = 5) -> list[Block]:
    """Long Markdown split on paragraph boundaries into at most ``max_blocks`` sections.

    Blank text gives no blocks (Slack rejects a section with empty text).
    """
    if not (text or "").strip():
        return []
    chunks: list[str] = []
    current = ""
    for para in (text or "").split("\n\n"):
        candidate = f"{current}\n\n{para}" if current else para
        if len(candidate) <= SECTION_TEXT_MAX:
            current = candidate
            continue
        if current:
            chunks.append(current)
        current = para
    if current:
        chunks.append(current)
    if len(chunks) > max_blocks:
        chunks = chunks[: max_blocks - 1] + [
            clip("\n\n".join(chunks[max_blocks - 1 :]), SECTION_TEXT_MAX)
        ]
    return [section(chunk) for chunk in chunks if chunk.strip()]


def context(*texts: str) -> Block:
    return {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": clip(t or " ", CONTEXT_ELEMENT_MAX)} for t in texts[:10]
        ],
    }


def divider() -> Block:
    return {"type": "divider"}


def button(
    text: str, *, action_id: str, value: str | None = None, style: str | None = None
) -> Block:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(text, BUTTON_TEXT_MAX)},
        "action_id": action_id,
    }
    if value is not None:
        element["value"] = clip(value, 2000)
    if style:
        element["style"] = style
    return element


def actions(*elements: Block, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements)[:25]}
    if block_id:
        block["block_id"] = block_id
    return block


def message(text: str, blocks: list[Block]) -> dict[str, Any]:
    """A message payload: ``text`` is the notification/fallback, ``blocks`` what is shown."""
    return {"text": clip(text, 4000), "blocks": blocks[:MESSAGE_BLOCKS_MAX]}
