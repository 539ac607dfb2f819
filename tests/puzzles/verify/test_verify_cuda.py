"""The verification engine on CUDA gives the CPU's verdicts (skipped on machines without a GPU)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from puzzles.catalog import get_puzzle, list_puzzles
from puzzles.models import load_model, load_task
from puzzles.verify import verify_submission
from puzzles.verify.ablation import AblationEngine, naive_logits
from puzzles.verify.circuit_check import circuit_check
from puzzles.verify.components import all_components

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

SLUGS = [p.slug for p in list_puzzles() if p.weights_path.is_file()]
# float32 kernels differ between devices (summation order, TF32 off by default): scores agree
# to a few 1e-5 relative; discrete results (argmax agreement, pass/fail) must be identical.
TOLERANCE = 1e-4


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    return a == b


@pytest.mark.parametrize("slug", SLUGS)
def test_reference_solution_verdict_is_the_same_on_cuda(slug: str) -> None:
    puzzle = get_puzzle(slug)
    source = puzzle.solution_path.read_bytes()
    verdicts = {
        device: verify_submission(source, "solution.py", puzzle, device=device, sandbox=False)
        for device in ("cpu", "cuda")
    }
    cpu, cuda = verdicts["cpu"], verdicts["cuda"]
    assert cuda.error is None, cuda.error
    assert cuda.device == "cuda"
    assert cuda.passed == cpu.passed and cuda.passed, cuda.report_md
    assert cuda.scores.keys() == cpu.scores.keys()
    for name, value in cpu.scores.items():
        assert _close(value, cuda.scores[name]), (name, value, cuda.scores[name])
    gap = max(abs(v - cuda.scores[k]) for k, v in cpu.scores.items())
    print(f"\n{slug}: scores {cuda.scores}; largest |cuda - cpu| {gap:.1e}")  # shown with -s
    for name, check in cpu.checks.items():
        assert check.passed == cuda.checks[name].passed, name
        for key, value in check.details.items():
            assert _close(value, cuda.checks[name].details[key]), (name, key)


@pytest.mark.parametrize("ablation", ["mean", "resample"])
def test_engine_on_cuda_equals_naive_and_cpu(ablation: str) -> None:
    puzzle = get_puzzle("cumsum_sign" if "cumsum_sign" in SLUGS else SLUGS[0])
    task = load_task(puzzle)
    tokens = task.generate(300, 5)
    engines = {}
    for device in ("cpu", "cuda"):
        model = load_model(puzzle, device=device)
        engine = AblationEngine(
            model, tokens, answer_positions=task.ANSWER_POSITIONS, ablation=ablation, seed=2
        )
        engines[device] = (model, engine)
    model, engine = engines["cuda"]
    assert engine.clean_logits.device.type == "cuda"
    cfg = model.cfg
    comps = all_components(
        n_layers=cfg.n_layers, n_heads=cfg.n_heads, attn_only=bool(cfg.attn_only)
    )
    for keep in ([], comps[:1], comps):
        mask = engine.mask_for(keep)
        fast = engine.logits(mask)
        torch.testing.assert_close(fast, naive_logits(model, engine, mask), rtol=0, atol=1e-4)
        on_cpu = engines["cpu"][1].logits(engines["cpu"][1].mask_for(keep))
        torch.testing.assert_close(fast.cpu(), on_cpu, rtol=1e-4, atol=1e-4)
    config = {"metric": "logit_diff"}
    result = circuit_check(engine, comps[:1], config=config)
    expected = circuit_check(engines["cpu"][1], comps[:1], config=config)
    for key in ("faithfulness", "minimality", "metric_circuit", "per_example_faithfulness"):
        assert _close(result.details[key], expected.details[key]), key


FORKED_WORKER = """
import multiprocessing, os, sys
os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"  # what bot.worker.tasks.default_queues sets
import torch
assert torch.cuda.is_available()
import puzzles.models, puzzles.verify.engine  # what bot.worker.tasks._preload imports before forking
assert not torch.cuda.is_initialized(), "the parent initialised CUDA before forking"

def child(results):
    from puzzles.catalog import get_puzzle
    from puzzles.verify import verify_submission
    puzzle = get_puzzle(sys.argv[1])
    verdict = verify_submission(
        puzzle.solution_path.read_bytes(), "solution.py", puzzle,
        device="cuda", sandbox=False,
    )
    results.put((verdict.device, verdict.passed, verdict.error))

results = multiprocessing.get_context("fork").SimpleQueue()
process = multiprocessing.get_context("fork").Process(target=child, args=(results,))
process.start()
process.join(120)
print("CHILD", process.exitcode, results.get() if not results.empty() else None)
"""


def test_a_forked_pool_child_verifies_on_cuda() -> None:
    """The GPU worker's order of things: Celery's prefork pool forks after the parent looked for
    CUDA and imported the engine; CUDA cannot be initialised again in a child once the parent did."""
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", FORKED_WORKER, SLUGS[0]],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CHILD 0 ('cuda', True, None)" in done.stdout, (done.stdout, done.stderr[-2000:])
