"""bench/ablation.py runs (a benchmark nobody runs rots) and its two engines agree on a reference
circuit that names head paths, through the whole circuit check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_ablation_runs_and_the_engines_agree_on_head_paths() -> None:
    args = ["--puzzle", "caesar_easy", "--batch", "32", "--repeat", "1"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ablation.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "ablated variants" in line]
    assert len(lines) == 2 and all("scores equal" in line for line in lines), result.stdout
