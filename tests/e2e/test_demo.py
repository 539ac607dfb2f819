"""``circuitboard run --demo`` as a newcomer runs it: a fresh directory, no terminal on stdin.

It must migrate a brand-new SQLite database, start the local worker and the scheduler, verify the
bundled reference solution in the sandbox and print a PASSED verdict, then exit 0. About 15 s on
an idle 2-core machine; the timeout is generous because CI shares the cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(400)
def test_run_demo_prints_a_passed_verdict_and_exits_0(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCUITBOARD_")}
    env["CIRCUITBOARD_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONPATH"] = str(REPO)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", "run", "--demo"],
        cwd=tmp_path,  # a fresh directory: no .env, no earlier data
        env=env,
        stdin=subprocess.DEVNULL,  # not a terminal: run the demo to its verdict and exit
        capture_output=True,
        text=True,
        timeout=360,
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    worker_log = tmp_path / "data" / "worker.log"
    context = output[-4000:]
    if result.returncode != 0 and worker_log.exists():
        context += "\n--- worker.log\n" + worker_log.read_text(errors="replace")[-4000:]
    assert result.returncode == 0, context
    assert "demo: submission #1 verified: PASSED" in result.stdout, context
    assert (tmp_path / "data" / "circuitboard.db").exists()
    print(f"circuitboard run --demo: verdict in {elapsed:.1f} s")
