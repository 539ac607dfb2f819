"""The usage lines shown with a refusal, made from the command table (so they list what runs)."""

from __future__ import annotations

from bot.grammar.table import group_usage
from bot.grammar.when import WHEN_HELP

ADMIN_USAGE = "Admin: " + group_usage("admin")
ROUND_USAGE = (
    "Usage: "
    + group_usage("admin", "round")
    + " (`announce`, `post-solutions`: a post missed while the bot was down)"
)
HINT_USAGE = "Usage: " + group_usage("admin", "hint") + f". <when>: {WHEN_HELP}"
CREDIT_USAGE = (
    '`/puzzle admin credit @user best|mention ["note"] [round=<id>]` (or `--round <id>`; '
    "default: the open round, else the most recently closed one)"
)
