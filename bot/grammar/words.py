"""Splitting a command's text into words and options, the same way for every command."""

from __future__ import annotations

import re
import shlex

from bot import slack_refs
from bot.grammar.errors import GrammarError
from bot.grammar.usage import CREDIT_USAGE

HELP_WORDS = frozenset({"help", "-h", "--help"})


def split_args(text: str) -> list[str]:
    """Shell-like words; Slack's typographic quotes count as quotes."""
    for fancy, plain in (("“", '"'), ("”", '"'), ("‘", "'"), ("’", "'")):
        text = text.replace(fancy, plain)
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise GrammarError(f"could not read that command ({exc}); check the quotes") from exc


def options(words: list[str], allowed: set[str]) -> dict[str, str]:
    """``opens "<when>" closes "<when>"``: name/value pairs, names from ``allowed``."""
    if len(words) % 2:
        raise GrammarError(f'expected pairs like `opens "<when>"`, got {" ".join(words)!r}')
    found = {}
    for name, value in zip(words[::2], words[1::2], strict=True):
        if name not in allowed:
            raise GrammarError(
                f"unknown option {name!r}; expected one of {', '.join(sorted(allowed))}"
            )
        found[name] = value
    return found


def id_arg(rest: list[str], *, what: str) -> int:
    """The ``#12`` or ``12`` that starts ``rest``; ``what`` says what to type when it is missing."""
    if not rest or not rest[0].lstrip("#").isdigit():
        raise GrammarError(what)
    return int(rest[0].lstrip("#"))


def channel_arg(word: str, *, directory: slack_refs.Directory | None = None) -> str:
    """A channel id from ``<#C…|name>``, ``<#C…>``, ``C…`` or a name (looked up): never a name."""
    try:
        return slack_refs.resolve_channel(word, directory=directory)
    except slack_refs.RefError as exc:
        raise GrammarError(str(exc)) from exc


def user_arg(word: str, *, directory: slack_refs.Directory | None = None) -> str:
    """The user id ``word`` names (a mention, an id or a name); raises ``RefError`` (a
    ``ValueError``) with a message for the admin."""
    return slack_refs.resolve_user(word, directory=directory)


_ROUND_OPTION = re.compile(r"^(?:--)?round=#?(\w+)$", re.IGNORECASE)


def round_option(words: list[str]) -> tuple[list[str], str | None]:
    """Take ``round=12``, ``--round=12`` or ``--round 12`` (``#12`` and ``latest`` too) out of
    ``words``; returns the other words and the round reference, if any."""
    rest: list[str] = []
    ref: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        match = _ROUND_OPTION.match(word)
        if match or word.lower() == "--round":
            if ref is not None:
                raise ValueError("give the round once. " + CREDIT_USAGE)
            if match:
                ref = match.group(1)
            elif i + 1 < len(words):
                i += 1
                ref = words[i].lstrip("#")
            else:
                raise ValueError("`--round` needs a round id. " + CREDIT_USAGE)
        else:
            rest.append(word)
        i += 1
    return rest, ref
