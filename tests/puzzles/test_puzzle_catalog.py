"""The catalog: discovery, metadata, checksums and the torch-free contract."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from puzzles.catalog import CATALOG_DIR, UnknownPuzzle, get_puzzle, list_puzzles, parse_hints

REQUIRED_FILES = (
    "puzzle.toml",
    "task.py",
    "weights.safetensors",
    "README.md",
    "hints.md",
    "solution.py",
    "writeup.md",
)
SLUGS = [p.slug for p in list_puzzles()]
# A puzzle's model is well trained (0.95 or better held out), except where it was retrained on
# purpose into a model whose mistakes follow its mechanism (issue 13: a model that almost never
# errs cannot tell a mechanism from the task rule); its README says why, and it stays far above
# chance (first_unique: 0.83 per position, chance about 0.1).
RETRAINED_FOR_MISTAKES = {"first_unique": 0.80}


def test_at_least_six_puzzles_with_recorded_accuracy() -> None:
    puzzles = list_puzzles()
    assert len(puzzles) >= 6, [p.slug for p in puzzles]
    for p in puzzles:
        floor = RETRAINED_FOR_MISTAKES.get(p.slug, 0.95)
        assert floor <= p.heldout_accuracy <= 1.0, (p.slug, p.heldout_accuracy)
        if p.slug in RETRAINED_FOR_MISTAKES:
            assert "retrain" in (p.path / "README.md").read_text().lower(), p.slug
        assert p.title and p.summary and p.description_md
        assert len(p.hints) >= 3, p.slug
        assert p.writeup_md.strip()
        assert p.verify.get("checks"), p.slug
        assert len(p.weights_sha256) == 64


@pytest.mark.parametrize("slug", SLUGS)
def test_every_entry_is_complete(slug: str) -> None:
    path = CATALOG_DIR / slug
    for name in REQUIRED_FILES:
        assert (path / name).is_file(), f"{slug} lacks {name}"
    assert (path / "weights.safetensors").stat().st_size < 1_000_000
    config = tomllib.loads((path / "puzzle.toml").read_text())
    assert config["slug"] == slug


def test_unknown_slug_lists_known_ones() -> None:
    with pytest.raises(UnknownPuzzle) as info:
        get_puzzle("no_such_puzzle")
    assert "palindromes" in str(info.value)
    with pytest.raises(UnknownPuzzle):
        get_puzzle("../palindromes")


def test_hints_are_ordered_sections() -> None:
    md = "# Hints\n\n## Hint 1\nfirst\n\n## Hint 2\nsecond\nline\n## Hint 3\nthird\n"
    assert parse_hints(md) == ["first", "second\nline", "third"]


def test_catalog_module_does_not_import_torch() -> None:
    code = "import sys, puzzles.catalog as c; c.list_puzzles(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
