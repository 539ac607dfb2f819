"""The hostile suite again, with the worker itself unprivileged (as the Docker image runs it).

Run as root, this starts pytest on ``test_hostile_submissions.py`` as ``nobody``: sandboxes then
come from bubblewrap's unprivileged user namespaces, and no cgroup can be made, so the
documented fallback limits are what is tested. The interpreter may live under a directory only
root can enter (``/root/.pyenv``): a mount namespace shows the unprivileged worker just that.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from puzzles.verify.sandbox import remove_tree

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1500),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap NOT installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="already unprivileged: the suite ran as such"),
]


def _reachable_interpreter() -> list[str]:
    """bwrap options that make each interpreter prefix reachable for ``nobody``."""
    args: list[str] = []
    for prefix in sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}):
        closed = next(
            (p for p in reversed(Path(prefix).parents) if not os.stat(p).st_mode & 0o001),
            None,
        )
        if closed is not None:
            args += ["--perms", "0755", "--tmpfs", str(closed)]
            for between in reversed(Path(prefix).parents):
                if between != closed and closed in between.parents:
                    args += ["--perms", "0755", "--dir", str(between)]
            args += ["--ro-bind", prefix, prefix]
    return args


def test_hostile_suite_passes_with_an_unprivileged_worker() -> None:
    # Under /tmp itself, reachable for nobody (not under this session's basetemp, which is root's
    # and where another test may have pointed ``tempfile.tempdir``).
    tmp_path = Path(tempfile.mkdtemp(prefix="cb-unprivileged-", dir="/tmp"))
    os.chmod(tmp_path, 0o777)
    try:
        _run_as_nobody(tmp_path)
    finally:
        remove_tree(tmp_path)


def _run_as_nobody(tmp_path: Path) -> None:
    argv = [shutil.which("bwrap"), "--dev-bind", "/", "/", *_reachable_interpreter()]
    argv += ["--setenv", "HOME", str(tmp_path), "--setenv", "TMPDIR", str(tmp_path)]
    argv += ["--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--chdir", str(ROOT), "--"]
    argv += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    argv += ["--inh-caps=-all", "--bounding-set=-all", "--"]
    argv += [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    argv += ["tests/hostile/test_hostile_submissions.py", "--basetemp", str(tmp_path / "t")]
    # Not this session's pytest settings, nor torch's cache dirs: torch writes its default
    # (under the temp dir of the moment, root's basetemp in a full run) into os.environ.
    leaked = ("PYTEST_", "TORCHINDUCTOR_", "TRITON_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(leaked)}
    run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1200)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    summary = re.search(r"hostile suite: (\d+) cases ran in bubblewrap as (.*)", output)
    assert summary, output[-3000:]
    assert int(summary.group(1)) >= 35
    assert f"uid {NOBODY} (unprivileged)" in summary.group(2)
    print(summary.group(0))
