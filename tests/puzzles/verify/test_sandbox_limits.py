"""Sandbox limits that hold for the whole submission: cgroup layouts, uid claims, result caps,
cleanup of any depth and the self-check the worker and its health check run."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from puzzles.verify import cgroups
from puzzles.verify import sandbox as sandbox_mod
from puzzles.verify.sandbox import (
    MAX_MESSAGE_CHARS,
    SandboxLimits,
    UidClaim,
    remove_tree,
    run_submission,
    sanitize_result,
    self_check,
)

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap NOT installed")


# --- cgroup layouts ------------------------------------------------------------------------------


def _fake_v2(root: Path, *, enabled: str) -> Path:
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    base = root / "worker.slice"
    base.mkdir()
    (base / "cgroup.subtree_control").write_text(enabled)
    return base


def test_v2_leaf_gets_one_memory_and_task_limit(tmp_path) -> None:
    base = _fake_v2(tmp_path, enabled="memory pids\n")
    layout, why = cgroups.find_layout(root=tmp_path, proc_cgroup="0::/worker.slice\n")
    assert layout == cgroups.Layout(2, (base,)), why
    leaf = cgroups.CgroupLeaf(layout, memory_bytes=512 << 20, pids=16, tag="t")
    (d,) = leaf.dirs
    assert d.parent == base
    assert (d / "memory.max").read_text() == str(512 << 20)
    assert (d / "pids.max").read_text() == "16"


def test_v2_without_delegated_controllers_says_why(tmp_path) -> None:
    base = _fake_v2(tmp_path, enabled="")
    (base / "cgroup.subtree_control").chmod(0o444)
    if os.geteuid() == 0:  # root writes through file modes: make the write fail another way
        (base / "cgroup.subtree_control").unlink()
        (base / "cgroup.subtree_control").mkdir()
    layout, why = cgroups.find_layout(root=tmp_path, proc_cgroup="0::/worker.slice\n")
    assert layout is None
    assert "memory and pids controllers" in why and cgroups.ENV_BASE in why


def test_v1_hierarchies_are_found_from_mountinfo(tmp_path) -> None:
    (tmp_path / "memory" / "docker" / "abc").mkdir(parents=True)
    (tmp_path / "pids" / "docker" / "abc").mkdir(parents=True)
    mountinfo = (
        f"32 31 0:29 / {tmp_path}/memory rw,relatime - cgroup cgroup rw,memory\n"
        f"33 31 0:30 /docker/abc {tmp_path}/pids rw,relatime - cgroup cgroup rw,pids\n"
    )
    proc = "4:memory:/docker/abc\n3:pids:/docker/abc\n0::/\n"
    layout, why = cgroups.find_layout(root=tmp_path, proc_cgroup=proc, mountinfo=mountinfo)
    assert layout is not None, why
    # memory mounted at the hierarchy's root, pids at our own cgroup (a cgroup namespace)
    assert layout.bases == (tmp_path / "memory" / "docker" / "abc", tmp_path / "pids")


# --- uids ----------------------------------------------------------------------------------------

_HOLD = """
import sys
sys.path.insert(0, {root!r})
from puzzles.verify.sandbox import UidClaim
claims = [UidClaim() for _ in range(40)]
print(" ".join(str(c.uid) for c in claims), flush=True)
sys.stdin.read()
"""


def test_uid_claims_are_unique_across_workers(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(sandbox_mod.UID_DIR_ENV, str(tmp_path / "uids"))
    root = str(Path(__file__).resolve().parents[3])
    other = subprocess.Popen(
        [sys.executable, "-c", _HOLD.format(root=root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        theirs = {int(u) for u in other.stdout.readline().split()}
        mine = [UidClaim() for _ in range(40)]
        assert len(theirs) == 40
        assert len({c.uid for c in mine}) == 40
        assert not theirs & {c.uid for c in mine}
    finally:
        other.stdin.close()
        other.wait(timeout=30)
    # a released claim (or a dead worker's) frees its uid
    freed = mine[0].uid
    for claim in mine:
        claim.release()
    assert freed in sandbox_mod.issued_uids()


# --- what leaves the sandbox ---------------------------------------------------------------------


def test_result_fields_are_checked_and_capped() -> None:
    forged = {
        "status": "memory",
        "message": "M" * 900_000,
        "errors": {"predict": "P" * 50_000, **{f"k{i}": "E" * 4000 for i in range(300)}},
        "circuit": ["L0H0"] * 5,
        "has_predict": "yes",
        "extra": "X" * 1_000_000,
    }
    result = sanitize_result(forged)
    assert len(json.dumps(result)) < 3 * MAX_MESSAGE_CHARS
    assert set(result["errors"]) == {"predict"}
    assert result["has_predict"] is False and "extra" not in result
    assert sanitize_result({"status": "hacked"})["message"].startswith("the submission's answer")
    assert sanitize_result([1, 2]) is None
    bad = sanitize_result({"status": "ok", "circuit": ["x" * 500]})
    assert bad["circuit"] is None and "at most" in bad["errors"]["circuit"]


def test_remove_tree_survives_any_depth(tmp_path) -> None:
    top = tmp_path / "deep"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(3000):  # made by walking down: deeper than any path name could reach
        os.mkdir("d", dir_fd=fd)
        nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    os.close(fd)
    remove_tree(top)  # shutil.rmtree, the cleanup before, raised RecursionError here
    assert not top.exists()
    remove_tree(top)  # already gone: no error


# --- the running sandbox -------------------------------------------------------------------------


@needs_bwrap
def test_self_check_starts_a_real_sandbox() -> None:
    assert self_check() is None
    assert "MB" in sandbox_mod.describe_limits()


def test_self_check_says_why_it_cannot_start(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap here
    assert "bubblewrap (bwrap) is not installed" in self_check()


@needs_bwrap
def test_whole_sandbox_limits_inside() -> None:
    probe = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
facts = {
    "userns": libc.unshare(0x10000000) == 0,
    "work": os.statvfs("/sandbox").f_blocks * os.statvfs("/sandbox").f_frsize,
    "tmp": os.statvfs("/tmp").f_blocks * os.statvfs("/tmp").f_frsize,
    "cwd": os.getcwd(),
}
for path in ("/dev/shm/x", "/x"):
    try:
        open(path, "w")
        facts[path] = "writable"
    except OSError:
        facts[path] = "read-only"
print("FACTS", facts)
CIRCUIT = ["L0H0"]
"""
    limits = SandboxLimits(wall_seconds=20, work_mb=16, tmpfs_mb=8)
    outcome = run_submission(probe, limits=limits, tokens=torch.zeros(2, 3, dtype=torch.long))
    line = next(x for x in outcome.log_tail.splitlines() if x.startswith("FACTS"))
    facts = ast.literal_eval(line[len("FACTS ") :])
    assert facts["userns"] is False
    assert facts["work"] == 16 << 20 and facts["tmp"] == 8 << 20
    assert facts["/dev/shm/x"] == "read-only" and facts["/x"] == "read-only"
    assert facts["cwd"] == "/sandbox"


def test_a_crash_while_checking_the_output_is_the_submissions_failure(monkeypatch) -> None:
    from puzzles.catalog import get_puzzle
    from puzzles.verify import engine, verify_submission

    def boom(**_: object) -> None:
        raise RecursionError("output built to break the checks")

    monkeypatch.setattr(engine, "replication_check", boom)
    puzzle = get_puzzle("palindromes")
    verdict = verify_submission(
        puzzle.solution_path.read_bytes(), "s.py", puzzle, sandbox=False, heldout_size=32
    )
    assert verdict.passed is False
    assert verdict.error_kind == "runtime"  # counted, unlike "infrastructure"
    assert "could not be checked (RecursionError)" in verdict.error
