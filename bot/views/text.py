"""Block Kit and Slack mrkdwn as terminal text, for the console and the CLI: the same views.

Slack-only markup is resolved the way Slack would show it: ``<!date^...>`` tokens as times in the
reader's (here: the terminal's) time zone, ``:emoji:`` names as characters, ``<url|label>`` links
as ``label (url)``, mentions as ``@name`` / ``#channel``, and ``*bold*`` / ``_italic_`` /
``~strike~`` / ``**bold**`` markers dropped. Code spans are left as typed, backticks included, so
commands can be copied.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Any

import emoji

from bot.views.escape import terminal

_USER = re.compile(r"<@([A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_DATE = re.compile(r"<!date\^(\d+)\^([^^|>]*)(?:\^[^|>]*)?(?:\|([^>]*))?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)
_MARKERS = [
    re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"),
    re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])"),
    re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])"),
    re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])"),
]
_SHORTCODE = re.compile(r":([a-z0-9_+\-]+):")
_SLACK_NAMES = {  # Slack spellings the emoji package's aliases lack
    "heavy_multiplication_x": "✖️",
    "white_check_mark": "✅",
    "hourglass_flowing_sand": "⏳",
}


def format_time(when: datetime, tz: tzinfo | None = None, *, with_time: bool = True) -> str:
    """``Tue 8 Dec 2026 17:00 CET``: a moment in ``tz`` (default: this machine's zone)."""
    local = when.astimezone(tz)
    day = f"{local:%a} {local.day} {local:%b %Y}"
    return f"{day} {local:%H:%M %Z}".strip() if with_time else day


def _date(match: re.Match[str], tz: tzinfo | None) -> str:
    when = datetime.fromtimestamp(int(match.group(1)), tz=UTC)
    return format_time(when, tz, with_time="{time" in match.group(2))


def _emoji(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in _SLACK_NAMES:
        return _SLACK_NAMES[name]
    char = emoji.emojize(f":{name}:", language="alias")
    return match.group(0) if char == f":{name}:" else char


def _plain(text: str, tz: tzinfo | None) -> str:
    """Markup outside code spans."""
    text = _DATE.sub(lambda m: _date(m, tz), text)
    text = _USER.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = _SPECIAL.sub(lambda m: "@" + m.group(1), text)
    text = _LINK.sub(
        lambda m: (
            f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1).removeprefix("mailto:")
        ),
        text,
    )
    for marker in _MARKERS:
        text = marker.sub(r"\1", text)
    return _SHORTCODE.sub(_emoji, text)


def mrkdwn_to_text(text: str, *, tz: tzinfo | None = None) -> str:
    """Slack mrkdwn as it reads in Slack, in plain text; ``tz`` for dates (default: local)."""
    spans: list[str] = []

    def hold(match: re.Match[str]) -> str:  # code is kept verbatim, even inside *bold*
        spans.append(match.group(0))
        return f"\x00{len(spans) - 1}\x00"

    plain = _plain(_CODE.sub(hold, text), tz)
    joined = re.sub(r"\x00(\d+)\x00", lambda m: spans[int(m.group(1))], plain)
    joined = joined.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return terminal(joined)  # shown in a terminal: no escape sequence from a submission acts


def _text_of(obj: Any, tz: tzinfo | None = None) -> str:
    if isinstance(obj, dict):
        return mrkdwn_to_text(str(obj.get("text", "")), tz=tz)
    return mrkdwn_to_text(str(obj or ""), tz=tz)


def render_block(block: dict[str, Any], *, tz: tzinfo | None = None) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        title = _text_of(block.get("text"), tz)
        return ["", title, "=" * min(len(title), 78)]
    if kind == "section":
        lines = _text_of(block.get("text"), tz).splitlines() if block.get("text") else []
        for field in block.get("fields", []) or []:
            lines.append(_text_of(field, tz))
        accessory = block.get("accessory")
        if accessory and accessory.get("type") == "button":
            lines.append(f"  [{_text_of(accessory.get('text'), tz)}]")
        return lines
    if kind == "context":
        return ["  " + " · ".join(_text_of(e, tz) for e in block.get("elements", []))]
    if kind == "divider":
        return ["-" * 40]
    if kind == "actions":
        labels = [f"[{_text_of(e.get('text'), tz)}]" for e in block.get("elements", [])]
        return ["  " + " ".join(labels)]
    if kind == "input":
        return [f"  {_text_of(block.get('label'), tz)}: ____"]
    if kind == "image":
        return [f"  (image: {block.get('alt_text', '')})"]
    return []


def render(payload: dict[str, Any], *, tz: tzinfo | None = None) -> str:
    """A message (``text`` + ``blocks``), a modal or a Home view as terminal text."""
    lines: list[str] = []
    if payload.get("type") in ("modal", "home") and payload.get("title"):
        lines += [f"[{_text_of(payload.get('title'), tz)}]"]
    blocks = payload.get("blocks") or []
    for block in blocks:
        lines.extend(render_block(block, tz=tz))
    if not blocks and payload.get("text"):
        lines.append(mrkdwn_to_text(str(payload["text"]), tz=tz))
    return "\n".join(lines).strip("\n")
