"""Escaping for text a submission (or its author) controls, for each place it is shown.

A verdict's report, a failure message and a file name all carry text the submission wrote. Each
destination has its own active syntax: Slack mrkdwn (``<!channel>``, ``<http://x|disguised>``,
``&`` entities), a terminal (ANSI/OSC escape sequences that recolour, retitle, hide text or write
links), Markdown (links, images, HTML). These functions make such text inert where it goes.
"""

from __future__ import annotations

import re
import unicodedata

_MRKDWN = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# C0 controls except tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), and the Unicode
# bidirectional overrides/isolates that reorder what a reader sees ("Trojan Source").
_TERMINAL_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_MARKDOWN_ACTIVE = re.compile(r"([\\`*_\[\]!|#~])")


def mrkdwn(text: str | None) -> str:
    """Plain text for Slack mrkdwn: ``&``, ``<`` and ``>`` escaped, so no mention, channel
    broadcast or (disguised) link survives. Slack shows the escaped characters as typed."""
    return (text or "").translate(_MRKDWN)


def mrkdwn_code(text: str | None) -> str:
    """Text for inside a Slack code span or block: escaped, and unable to close the fence."""
    return mrkdwn(text).replace("```", "'''").replace("`", "'")


def terminal(text: str | None) -> str:
    """Text safe to print to a terminal: control characters (ESC, BEL, CR, C1, bidi overrides)
    shown as visible ``\\x1b``-style escapes instead of being interpreted."""
    return _TERMINAL_UNSAFE.sub(lambda m: _visible(m.group()), text or "")


def markdown(text: str | None) -> str:
    """Plain text for Markdown: HTML's ``&<>`` as entities, every other character with Markdown
    meaning backslash-escaped, control characters made visible, lines kept."""
    return _MARKDOWN_ACTIVE.sub(r"\\\1", mrkdwn(terminal(text)))


def _visible(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if unicodedata.category(char) in ("Cf", "Cc") else char


_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.MULTILINE)
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def report_mrkdwn(report_md: str | None) -> str:
    """A verdict report (Markdown quoting the submission's output) as mrkdwn: everything escaped
    first, then only headings and bold converted. Markdown links are NOT turned into Slack links:
    link text in a report comes from the submission and could disguise where a link goes."""
    text = mrkdwn(report_md)
    text = _HEADING.sub(lambda m: f"*{m[1].strip()}*", text)
    return _BOLD.sub(lambda m: f"*{m[1]}*", text)
