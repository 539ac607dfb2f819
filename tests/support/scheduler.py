"""Shared by the monthly-cycle tests: a two-puzzle catalog on disk, settings, UTC times.

The catalog lives in a temporary directory (``CIRCUITBOARD_CATALOG_PATH``) so the tests know exactly
which hints and write-up each puzzle has, whatever the shipped catalog holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.settings import Settings

ADMIN = "UADMIN"
CHANNEL = "CPUZZLE"

PUZZLES = {
    "alpha": {
        "title": "Alpha palindromes",
        "hints": ["Look at head L0H1.", "The MLP compares **two** positions.", "Mind the middle."],
        "writeup": "## Mechanism\nL0H1 attends to the mirrored position; the MLP compares.",
    },
    "beta": {
        "title": "Beta sorting",
        "hints": ["Attention sorts.", "Count the smaller tokens."],
        "writeup": "Beta's mechanism: counting.",
    },
}


def write_catalog(root: Path) -> Path:
    for order, (slug, spec) in enumerate(PUZZLES.items()):
        d = root / slug
        d.mkdir(parents=True)
        (d / "puzzle.toml").write_text(
            f'slug = "{slug}"\ntitle = "{spec["title"]}"\nsummary = "A test puzzle."\n'
            f'version = 1\norder = {order}\n[weights]\nsha256 = "{"ab" * 32}"\n',
            encoding="utf-8",
        )
        (d / "README.md").write_text(f"# {spec['title']}\n\nFind the circuit.\n", encoding="utf-8")
        hints_md = "\n\n".join(f"## Hint {i}\n{h}" for i, h in enumerate(spec["hints"], 1))
        (d / "hints.md").write_text(hints_md + "\n", encoding="utf-8")
        (d / "writeup.md").write_text(spec["writeup"] + "\n", encoding="utf-8")
    return root


def make_settings(url: str, **overrides) -> Settings:
    values = {
        "database_url": url,
        "timezone": "Europe/Berlin",
        "admins": [ADMIN],
        "schedule_tick_seconds": 30.0,
        "schedule_grace_hours": 6.0,
    }
    values.update(overrides)
    return Settings(**values)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
