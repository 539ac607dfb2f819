"""The `/puzzle` command grammar, shared by Slack, the console and the CLI.

``table`` lists every command (dispatch, usage lines and help are made from it), ``words`` splits
a command's text into words and options, ``when`` reads the times admins type, ``usage`` holds the
usage lines shown with a refusal. It imports nothing of the bot's state: views build help from it,
flows dispatch with it.
"""

from bot.grammar.errors import GrammarError
from bot.grammar.table import (
    COMMANDS,
    GROUPS,
    Command,
    commands_under,
    group_usage,
    help_lines,
    resolve,
)

__all__ = [
    "COMMANDS",
    "GROUPS",
    "Command",
    "GrammarError",
    "commands_under",
    "group_usage",
    "help_lines",
    "resolve",
]
