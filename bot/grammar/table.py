"""The `/puzzle` command grammar: one table that dispatch, usage strings and help are made from.

Slack and the console both run `/puzzle` through ``bot.flows.puzzle_command``, which looks each
command up here before running it: a command missing from this table is answered as unknown, and
every entry's ``example`` is run by the tests, so help can list nothing that does not work.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "/puzzle"


@dataclass(frozen=True)
class Command:
    """One sub-command: its words after `/puzzle`, its arguments as shown, what it does."""

    words: tuple[str, ...]
    args: str = ""
    summary: str = ""
    admin: bool = False
    example: str = ""  # concrete arguments the tests run it with (placeholders filled in)
    aliases: tuple[str, ...] = ()  # other spellings of the last word

    @property
    def usage(self) -> str:
        return " ".join(part for part in (PREFIX, *self.words, self.args) if part)

    def short_usage(self, drop: int) -> str:
        """The usage without `/puzzle` and the first ``drop`` words (for grouped lists)."""
        return " ".join(part for part in (*self.words[drop:], self.args) if part)


WHEN = '"<when>"'
COMMANDS: tuple[Command, ...] = (
    Command(
        (),
        "",
        "the current puzzle, its description, kit and released hints",
        aliases=("show", "puzzle"),
    ),
    Command(
        ("submit",), "", "upload a solution (`.py` or `.ipynb`) with an optional write-up link"
    ),
    Command(("hints",), "", "the hints released so far"),
    Command(("leaderboard",), "", "the current round's leaderboard (all-time when none is open)"),
    Command(("me",), "", "your submissions and their status"),
    Command(("help",), "", "this message", aliases=("-h", "--help")),
    Command(("admin", "list"), "", "admins and recent admin actions", admin=True),
    Command(("admin", "grant"), "@user", "give the admin role", admin=True, example="@UNEW"),
    Command(("admin", "revoke"), "@user", "take the admin role", admin=True, example="@UNEW"),
    Command(
        ("admin", "reverify"),
        "<submission id>",
        "verify a submission again",
        admin=True,
        example="{submission}",
    ),
    Command(
        ("admin", "hint", "add"),
        f"{WHEN} <text>",
        "schedule a hint (the round open at that time, else the open one)",
        admin=True,
        example='"in 2 days" Look at the last position.',
    ),
    Command(("admin", "hint", "list"), "[round id]", "a round's hints", admin=True),
    Command(
        ("admin", "hint", "edit"),
        f"<id> time {WHEN} | <id> text <new text>",
        "move or reword a hint before its release",
        admin=True,
        example="{hint} text Look at the first position.",
    ),
    Command(
        ("admin", "hint", "cancel"),
        "<id>",
        "cancel a hint before its release",
        admin=True,
        example="{hint}",
    ),
    Command(
        ("admin", "hint", "release"),
        "<id>",
        "post a hint missed while the bot was down",
        admin=True,
        example="{released_hint}",
    ),
    Command(
        ("admin", "round", "plan"),
        f"<puzzle> [opens {WHEN}] [closes {WHEN}] [channel #c]",
        "plan a round (default cadence: the 1st of the next free month)",
        admin=True,
        example="sorted_list",
    ),
    Command(("admin", "round", "list"), "", "all rounds", admin=True),
    Command(
        ("admin", "round", "show"), "<id>", "a round and its hints", admin=True, example="{round}"
    ),
    Command(
        ("admin", "round", "reschedule"),
        f"<id> [opens {WHEN}] [closes {WHEN}]",
        "move a round's opening or closing",
        admin=True,
        example='{round} closes "in 20 days"',
    ),
    Command(
        ("admin", "round", "cancel"),
        "<id>",
        "cancel a round that has not closed",
        admin=True,
        example="{planned_round}",
    ),
    Command(
        ("admin", "round", "announce"),
        "<id>",
        "post a round's announcement missed while the bot was down",
        admin=True,
        example="{round}",
    ),
    Command(
        ("admin", "round", "post-solutions"),
        "<id>",
        "post a closed round's solutions missed while the bot was down",
        admin=True,
        example="{closed_round}",
    ),
    Command(
        ("admin", "credit"),
        '@user best|mention ["note"] [round=<id>]',
        "award a credit (default: the open round, else the last closed one)",
        admin=True,
        example='@UWINNER best "clean circuit"',
    ),
)
GROUPS = {("admin", "hint"), ("admin", "round")}  # words that take a further verb


def resolve(words: list[str]) -> tuple[Command | None, list[str]]:
    """The command ``words`` (the text after `/puzzle`, split) names, and the words after it.

    ``None`` when the words name no command; the empty command is `/puzzle` itself.
    """
    lowered = [w.lower() for w in words]
    if not words or lowered[0] in COMMANDS[0].aliases:
        return COMMANDS[0], words[1:]
    for size in (3, 2, 1):
        head = lowered[:size]
        for command in COMMANDS:
            if len(command.words) != size:
                continue
            spellings = {command.words[-1], *command.aliases}
            if tuple(head[:-1]) == command.words[:-1] and head[-1:] and head[-1] in spellings:
                return command, words[size:]
    return None, words


def commands_under(*prefix: str) -> list[Command]:
    return [c for c in COMMANDS if c.words[: len(prefix)] == prefix and len(c.words) > len(prefix)]


def help_lines(*, admin: bool) -> list[tuple[str, str]]:
    """(usage, summary) pairs for `/puzzle help`: the participant's, or the admin's."""
    return [(f"`{c.usage}`", c.summary) for c in COMMANDS if c.admin == admin]


def group_usage(*prefix: str, drop: int = 1) -> str:
    """`a` · `b` ... for the commands under ``prefix`` (e.g. ``("admin", "round")``)."""
    return " · ".join(f"`{c.short_usage(drop)}`" for c in commands_under(*prefix))
