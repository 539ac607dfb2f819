"""Slack's Block Kit limits, checked: a payload that breaks one is rejected whole by Slack.

Used by the tests over every view; cheap enough to run in production code paths too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LIMITS = {
    "message_blocks": 50,
    "home_blocks": 100,
    "modal_blocks": 100,
    "message_text": 40000,
    "section_text": 3000,
    "section_fields": 10,
    "field_text": 2000,
    "header_text": 150,
    "context_elements": 10,
    "actions_elements": 25,
    "button_text": 75,
    "action_id": 255,
    "block_id": 255,
    "button_value": 2000,
    "modal_title": 24,
    "modal_button": 24,
    "input_label": 2000,
    "private_metadata": 3000,
    "callback_id": 255,
}
KNOWN_BLOCKS = {"section", "header", "context", "divider", "actions", "input", "image", "rich_text"}


def _text(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else ""


def validate_blocks(blocks: list[dict[str, Any]], *, max_blocks: int) -> list[str]:
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"{len(blocks)} blocks > {max_blocks}")
    for i, block in enumerate(blocks):
        kind = block.get("type")
        where = f"block {i} ({kind})"
        if kind not in KNOWN_BLOCKS:
            errors.append(f"{where}: unknown block type")
        if len(str(block.get("block_id", ""))) > LIMITS["block_id"]:
            errors.append(f"{where}: block_id too long")
        check = _BLOCK_CHECKS.get(str(kind))
        if check is not None:
            errors += check(block, where)
    return errors


def _section_errors(block: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    text = _text(block.get("text"))
    if not block.get("text") and not block.get("fields"):
        errors.append(f"{where}: needs text or fields")
    if block.get("text") and not text.strip():
        errors.append(f"{where}: empty text")
    if len(text) > LIMITS["section_text"]:
        errors.append(f"{where}: text {len(text)} > {LIMITS['section_text']}")
    fields = block.get("fields") or []
    if len(fields) > LIMITS["section_fields"]:
        errors.append(f"{where}: too many fields")
    errors += [f"{where}: field too long" for f in fields if len(_text(f)) > LIMITS["field_text"]]
    return errors


def _header_errors(block: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    text = block.get("text", {})
    if text.get("type") != "plain_text":
        errors.append(f"{where}: header text must be plain_text")
    if not _text(text).strip() or len(_text(text)) > LIMITS["header_text"]:
        errors.append(f"{where}: header text length {len(_text(text))}")
    return errors


def _context_errors(block: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    elements = block.get("elements") or []
    if not elements or len(elements) > LIMITS["context_elements"]:
        errors.append(f"{where}: {len(elements)} context elements")
    errors += [
        f"{where}: context text empty or too long"
        for e in elements
        if not _text(e).strip() or len(_text(e)) > LIMITS["field_text"]
    ]
    return errors


def _actions_errors(block: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    elements = block.get("elements") or []
    if not elements or len(elements) > LIMITS["actions_elements"]:
        errors.append(f"{where}: {len(elements)} action elements")
    ids = [e.get("action_id") for e in elements]
    if len(ids) != len(set(ids)):
        errors.append(f"{where}: duplicate action_id")
    for e in elements:
        errors += _element_errors(e, where)
    return errors


def _input_errors(block: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    label = _text(block.get("label"))
    if not label or len(label) > LIMITS["input_label"]:
        errors.append(f"{where}: label length {len(label)}")
    if "element" not in block:
        errors.append(f"{where}: input without element")
    else:
        errors += _element_errors(block["element"], where)
    return errors


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "section": _section_errors,
    "header": _header_errors,
    "context": _context_errors,
    "actions": _actions_errors,
    "input": _input_errors,
}


def _element_errors(element: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    if len(str(element.get("action_id", ""))) > LIMITS["action_id"]:
        errors.append(f"{where}: action_id too long")
    if element.get("type") == "button":
        text = _text(element.get("text"))
        if not text or len(text) > LIMITS["button_text"]:
            errors.append(f"{where}: button text length {len(text)}")
        if len(str(element.get("value", ""))) > LIMITS["button_value"]:
            errors.append(f"{where}: button value too long")
    return errors


def validate_message(payload: dict[str, Any]) -> list[str]:
    errors = validate_blocks(payload.get("blocks") or [], max_blocks=LIMITS["message_blocks"])
    text = payload.get("text") or ""
    if not text.strip():
        errors.append("message needs a fallback text (notifications, screen readers)")
    if len(text) > LIMITS["message_text"]:
        errors.append("message text too long")
    return errors


def validate_view(view: dict[str, Any]) -> list[str]:
    kind = view.get("type")
    max_blocks = LIMITS["home_blocks"] if kind == "home" else LIMITS["modal_blocks"]
    errors = validate_blocks(view.get("blocks") or [], max_blocks=max_blocks)
    if kind == "modal":
        for name in ("title", "submit", "close"):
            if name in view and len(_text(view[name])) > LIMITS["modal_title"]:
                errors.append(f"modal {name} too long")
        if not _text(view.get("title")):
            errors.append("modal needs a title")
        if len(view.get("private_metadata", "")) > LIMITS["private_metadata"]:
            errors.append("private_metadata too long")
        if len(view.get("callback_id", "")) > LIMITS["callback_id"]:
            errors.append("callback_id too long")
        if any(b.get("type") == "input" for b in view.get("blocks", [])) and "submit" not in view:
            errors.append("a modal with inputs needs a submit button")
    elif kind != "home":
        errors.append(f"unknown view type {kind!r}")
    return errors
