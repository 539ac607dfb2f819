"""Sandbox mechanics: one fresh sandbox per submission, unprivileged, refusal without bubblewrap."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from puzzles.catalog import get_puzzle
from puzzles.verify import SandboxUnavailable, verify_submission
from puzzles.verify.sandbox import Sandbox, SandboxLimits, SandboxPool, run_submission

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap NOT installed")
LIMITS = SandboxLimits(wall_seconds=20)

PROBE = """
import os, resource, json, socket
info = {
    "uid": os.getuid(),
    "cwd": os.getcwd(),
    "env": sorted(os.environ),
    "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
    "as": resource.getrlimit(resource.RLIMIT_AS)[0],
    "hostname": socket.gethostname(),
    "repo_visible": os.path.exists("/work/main/puzzles/catalog"),
}
CIRCUIT = ["L0H0"]
def predict(tokens):
    print("PROBE" + json.dumps(info))
    return tokens[:, :1] % 2
"""


def _probe(outcome) -> dict:
    line = next(x for x in outcome.log_tail.splitlines() if x.startswith("PROBE"))
    return json.loads(line[len("PROBE") :])


@needs_bwrap
def test_sandbox_runs_predict_unprivileged_and_isolated() -> None:
    tokens = torch.randint(0, 9, (12, 5))
    outcome = run_submission(PROBE, tokens=tokens, k=1, n_classes=2, limits=LIMITS)
    assert outcome.failure is None, outcome.log_tail
    assert outcome.predictions.shape == (12, 1)
    assert torch.equal(outcome.predictions, tokens[:, :1] % 2)
    assert outcome.result["circuit"] == ["L0H0"]
    info = _probe(outcome)
    assert info["uid"] != 0
    if os.geteuid() == 0:  # as root each sandbox gets a uid of its own, so the budget is exact
        assert info["nproc"] == LIMITS.nproc
    assert info["cwd"] == "/sandbox"
    assert not any(key.startswith("CIRCUITBOARD") for key in info["env"])
    # the budget sits on top of what the interpreter maps with torch imported
    assert info["as"] == outcome.result["address_space_base"] + (LIMITS.memory_mb << 20)
    assert info["hostname"] == "sandbox"
    assert info["repo_visible"] is False


@needs_bwrap
def test_pool_hands_out_each_sandbox_once_and_cleans_up() -> None:
    with SandboxPool(size=1, limits=LIMITS) as pool:
        first, second = pool.acquire(), pool.acquire()
        assert first is not second and first.workdir is None  # nothing of it on the host disk
        if os.geteuid() == 0:
            assert first.uid != second.uid
        outcome = first.run("CIRCUIT = ['L1H0']\n")
        assert outcome.failure is None and outcome.result["circuit"] == ["L1H0"]
        with pytest.raises(RuntimeError, match="exactly one"):
            first.run("CIRCUIT = []\n")
        assert first.proc.poll() is not None
        second.close()
        assert second.proc.poll() is not None
        for box in (first, second):
            if box.cgroup is not None:
                assert not any(d.exists() for d in box.cgroup.dirs)
    assert pool._ready == type(pool._ready)()


def test_unsandboxed_mode_runs_without_bwrap() -> None:
    outcome = run_submission(
        "CIRCUIT = ['L0MLP']\n", sandbox=False, limits=SandboxLimits(wall_seconds=20)
    )
    assert outcome.failure is None
    assert outcome.sandboxed is False
    assert outcome.result["circuit"] == ["L0MLP"]


ALLOCATE = """
def predict(tokens):
    block = bytearray({mb} << 20)
    return tokens[:, :1] % 2
"""


@pytest.mark.parametrize("sandbox", [pytest.param(True, marks=needs_bwrap), False])
def test_memory_budget_is_on_top_of_the_torch_import(sandbox: bool) -> None:
    # 384 MB in all would not even hold a CPU build of torch (~0.6 GB mapped; a CUDA build maps
    # several GB): the budget is what the submission itself may add.
    limits = SandboxLimits(memory_mb=384, wall_seconds=20)
    tokens = torch.randint(0, 9, (4, 5))
    run = {"tokens": tokens, "k": 1, "n_classes": 2, "limits": limits, "sandbox": sandbox}
    fits = run_submission(ALLOCATE.format(mb=256), **run)
    assert fits.failure is None, fits.log_tail
    assert torch.equal(fits.predictions, tokens[:, :1] % 2)
    too_big = run_submission(ALLOCATE.format(mb=512), **run)
    assert too_big.failure is not None and "out of memory" in too_big.failure


PROBE_CUDA = """
import os, torch
def predict(tokens):
    print("CUDA", torch.cuda.is_available(), repr(os.environ.get("CUDA_VISIBLE_DEVICES")))
    return tokens[:, :1] % 2
"""


def test_submission_code_sees_no_gpu() -> None:
    # Unsandboxed too: predict runs on the CPU even on a GPU worker (bwrap's /dev has no GPU either).
    tokens = torch.randint(0, 9, (4, 5))
    outcome = run_submission(
        PROBE_CUDA, tokens=tokens, k=1, n_classes=2, sandbox=False, limits=LIMITS
    )
    assert outcome.failure is None, outcome.log_tail
    assert "CUDA False ''" in outcome.log_tail


def test_no_bwrap_means_refusal(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without bwrap
    with pytest.raises(SandboxUnavailable, match="unsafe-no-sandbox"):
        Sandbox(LIMITS)
    puzzle = get_puzzle("palindromes")
    with pytest.raises(SandboxUnavailable):
        verify_submission(puzzle.solution_path.read_bytes(), "s.py", puzzle, heldout_size=64)
    verdict = verify_submission(
        puzzle.solution_path.read_bytes(), "s.py", puzzle, sandbox=False, heldout_size=64
    )
    assert verdict.error is None
    assert verdict.sandboxed is False and "WITHOUT the sandbox" in verdict.report_md


def test_bad_input_never_starts_a_sandbox(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # would raise if a sandbox were started
    puzzle = get_puzzle("palindromes")
    verdict = verify_submission(b"\xff\xfe", "s.py", puzzle)
    assert verdict.error_kind == "input" and not verdict.passed
    assert os.environ["PATH"] == str(tmp_path)
