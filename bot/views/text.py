"""Block Kit as plain text, for the console: the same views, read in a terminal."""

from __future__ import annotations

import re
from typing import Any

from bot.views.escape import terminal

_USER = re.compile(r"<@([A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<(https?://[^|>]+)(?:\|([^>]*))?>")
_EMOJI = {
    ":white_check_mark:": "✅",
    ":x:": "❌",
    ":warning:": "⚠️",
    ":gear:": "⚙️",
    ":hourglass_flowing_sand:": "⏳",
    ":inbox_tray:": "📥",
    ":no_entry:": "⛔",
    ":tada:": "🎉",
    ":heavy_multiplication_x:": "✖",
}


def mrkdwn_to_text(text: str) -> str:
    text = _USER.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    for code, char in _EMOJI.items():
        text = text.replace(code, char)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return terminal(text)  # shown in a terminal: no escape sequence from a submission acts


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        return mrkdwn_to_text(str(obj.get("text", "")))
    return mrkdwn_to_text(str(obj or ""))


def render_block(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        title = _text_of(block.get("text"))
        return ["", title, "=" * min(len(title), 78)]
    if kind == "section":
        lines = _text_of(block.get("text")).splitlines() if block.get("text") else []
        for field in block.get("fields", []) or []:
            lines.append(_text_of(field))
        accessory = block.get("accessory")
        if accessory and accessory.get("type") == "button":
            lines.append(f"  [{_text_of(accessory.get('text'))}]")
        return lines
    if kind == "context":
        return ["  " + " · ".join(_text_of(e) for e in block.get("elements", []))]
    if kind == "divider":
        return ["-" * 40]
    if kind == "actions":
        labels = [f"[{_text_of(e.get('text'))}]" for e in block.get("elements", [])]
        return ["  " + " ".join(labels)]
    if kind == "input":
        return [f"  {_text_of(block.get('label'))}: ____"]
    if kind == "image":
        return [f"  (image: {block.get('alt_text', '')})"]
    return []


def render(payload: dict[str, Any]) -> str:
    """A message (``text`` + ``blocks``), a modal or a Home view as terminal text."""
    lines: list[str] = []
    if payload.get("type") in ("modal", "home") and payload.get("title"):
        lines += [f"[{_text_of(payload.get('title'))}]"]
    blocks = payload.get("blocks") or []
    for block in blocks:
        lines.extend(render_block(block))
    if not blocks and payload.get("text"):
        lines.append(mrkdwn_to_text(str(payload["text"])))
    return "\n".join(lines).strip("\n")
