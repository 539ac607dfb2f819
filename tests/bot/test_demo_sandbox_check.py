"""`circuitboard run --demo` checks the sandbox first and says what is missing, in its output."""

from __future__ import annotations

import io
import os
import sys

from bot.embedded import run_system, sandbox_problem
from bot.settings import Settings


def _settings(tmp_path, **kw):
    return Settings(data_dir=tmp_path / "data", **kw)


def test_without_bwrap_the_demo_says_how_to_install_it_and_starts_nothing(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    settings = _settings(tmp_path)
    out = io.StringIO()
    stdin = io.StringIO("")
    assert run_system(settings, demo=True, stdin=stdin, out=out) == 1
    text = out.getvalue()
    assert "bubblewrap (`bwrap`) is not installed" in text
    assert "apt-get install -y bubblewrap" in text
    assert "CIRCUITBOARD_UNSAFE_NO_SANDBOX=true" in text
    assert not settings.data_dir.exists()  # nothing migrated, no worker started


def test_a_bwrap_that_cannot_start_is_reported_with_its_own_words(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    bwrap = fake / "bwrap"
    bwrap.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    bwrap.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    problem = sandbox_problem(_settings(tmp_path))
    assert problem is not None
    assert f"bubblewrap ({bwrap}) is installed but cannot start a sandbox here" in problem
    assert "No permissions to create new namespace" in problem


def test_a_working_bwrap_or_the_unsafe_setting_passes(tmp_path, monkeypatch):
    assert sandbox_problem(_settings(tmp_path, unsafe_no_sandbox=True)) is None
    from shutil import which

    if which("bwrap") and sys.platform == "linux":
        assert sandbox_problem(_settings(tmp_path)) is None
