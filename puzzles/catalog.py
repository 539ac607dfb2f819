"""The puzzle catalog: discover and describe the puzzles shipped in ``puzzles/catalog/<slug>/``.

This module stays free of torch so the Slack bot can list puzzles, show hints and post write-ups
without loading the model stack; ``puzzles.models`` builds and loads the models themselves.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CATALOG_DIR = Path(__file__).resolve().parent / "catalog"
"""Where the shipped puzzles live (package data, so it works from an installed wheel too)."""

EXTRA_PATH_ENV = "CIRCUITBOARD_CATALOG_PATH"
"""Extra catalog directories (``os.pathsep``-separated), e.g. where ``import-legacy`` wrote to."""

SLUG_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class UnknownPuzzle(LookupError):
    """No puzzle with that slug; the message lists the known ones."""

    def __init__(self, slug: str, known: list[str]) -> None:
        self.slug = slug
        self.known = known
        super().__init__(f"unknown puzzle {slug!r}; known puzzles: {', '.join(known) or '(none)'}")

    def __str__(self) -> str:  # LookupError would repr() the message
        return str(self.args[0])


class CatalogError(ValueError):
    """A catalog entry on disk is malformed (missing file, bad puzzle.toml)."""


@dataclass(frozen=True)
class Puzzle:
    slug: str
    title: str
    summary: str
    version: int
    path: Path
    config: dict = field(repr=False)
    heldout_accuracy: float
    description_md: str = field(repr=False)
    hints: list[str] = field(repr=False)
    writeup_md: str = field(repr=False)
    solution_path: Path
    weights_path: Path
    weights_sha256: str
    verify: dict = field(repr=False)

    @property
    def task_path(self) -> Path:
        return self.path / "task.py"

    @property
    def model_config(self) -> dict[str, Any]:
        """The ``[model]`` table: TransformerBridgeConfig keyword arguments."""
        return dict(self.config.get("model", {}))

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.config.get("metrics", {}))

    @property
    def task_config(self) -> dict[str, Any]:
        return dict(self.config.get("task", {}))


def parse_hints(markdown: str) -> list[str]:
    """Split hints.md into ordered hints: one per ``## `` section, the heading dropped."""
    sections: list[list[str]] = []
    for line in markdown.splitlines():
        if line.startswith("## "):
            sections.append([])
        elif sections:
            sections[-1].append(line)
    return [text for text in ("\n".join(s).strip() for s in sections) if text]


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def load_puzzle_dir(path: Path) -> Puzzle:
    """Read one catalog entry (a directory holding ``puzzle.toml``)."""
    toml_path = path / "puzzle.toml"
    try:
        config = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{toml_path}: {exc}") from exc
    slug = config.get("slug", path.name)
    if slug != path.name or not SLUG_RE.match(slug):
        raise CatalogError(
            f"{toml_path}: slug {slug!r} must match its directory and {SLUG_RE.pattern}"
        )
    weights = config.get("weights", {})
    metrics = config.get("metrics", {})
    return Puzzle(
        slug=slug,
        title=config.get("title", slug),
        summary=config.get("summary", ""),
        version=int(config.get("version", 1)),
        path=path,
        config=config,
        heldout_accuracy=float(metrics.get("heldout_accuracy", float("nan"))),
        description_md=_read_text(path / "README.md"),
        hints=parse_hints(_read_text(path / "hints.md")),
        writeup_md=_read_text(path / "writeup.md"),
        solution_path=path / "solution.py",
        weights_path=path / weights.get("file", "weights.safetensors"),
        weights_sha256=str(weights.get("sha256", "")),
        verify=dict(config.get("verify", {})),
    )


def catalog_dirs() -> list[Path]:
    """The shipped catalog first, then any directories named in ``CIRCUITBOARD_CATALOG_PATH``."""
    extra = [Path(p) for p in os.environ.get(EXTRA_PATH_ENV, "").split(os.pathsep) if p]
    return [CATALOG_DIR, *extra]


def _entries(roots: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            if (child / "puzzle.toml").is_file() and child.name not in found:
                found[child.name] = child
    return found


def list_puzzles(*, roots: list[Path] | None = None) -> list[Puzzle]:
    """Every puzzle in the catalog, ordered by ``order`` in puzzle.toml, then slug."""
    puzzles = [load_puzzle_dir(p) for p in _entries(roots or catalog_dirs()).values()]
    return sorted(puzzles, key=lambda p: (int(p.config.get("order", 1000)), p.slug))


def get_puzzle(slug: str, *, roots: list[Path] | None = None) -> Puzzle:
    """The puzzle with this slug; ``UnknownPuzzle`` (listing the known slugs) if there is none."""
    entries = _entries(roots or catalog_dirs())
    if not isinstance(slug, str) or slug not in entries:
        raise UnknownPuzzle(str(slug), sorted(entries))
    return load_puzzle_dir(entries[slug])
