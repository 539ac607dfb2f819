"""The catalog ships in the wheel, so it works from an installed (non-editable) package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from puzzles.catalog import CATALOG_DIR, list_puzzles

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_every_catalog_file(tmp_path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(ROOT),
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=240)
    (wheel,) = tmp_path.glob("circuitboard-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for puzzle in list_puzzles():
        for name in (
            "puzzle.toml",
            "task.py",
            "weights.safetensors",
            "README.md",
            "hints.md",
            "solution.py",
            "writeup.md",
        ):
            rel = (puzzle.path / name).relative_to(CATALOG_DIR.parent.parent).as_posix()
            assert rel in names, rel
