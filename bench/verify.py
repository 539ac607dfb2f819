"""End-to-end verify latency per puzzle, sandbox start included: cold sandboxes vs a warm pool.

Each submission gets a fresh sandbox either way (never reused). "cold" starts it on demand (its
torch import overlaps with the model work in this process); "pool" takes one pre-started by a
:class:`SandboxPool` (python up, torch imported) while the pool starts its replacement. The model is
loaded once per process, as in the worker. Prints p50/p90 per puzzle and the cold/pool ratio::

    python bench/verify.py [--puzzle SLUG ...] [--runs 8] [--pool-size 2] [--device cpu|cuda]
                           [--unsafe-no-sandbox]

``--unsafe-no-sandbox`` times the same path without bubblewrap (the reference solutions are
trusted code), for machines without it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# the repo root instead of bench/ itself (bench/queue.py would shadow the stdlib's queue)
sys.path[0] = str(Path(__file__).resolve().parents[1])

from puzzles.catalog import list_puzzles  # noqa: E402
from puzzles.verify import SandboxPool, verify_submission  # noqa: E402


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _run(
    puzzle, source: bytes, runs: int, device: str, pool: SandboxPool | None, sandbox: bool
) -> list[float]:
    times = []
    for _ in range(runs):
        if pool is not None:
            time.sleep(2.0)  # submissions arrive spaced out; the pool refills in between
        started = time.perf_counter()
        verdict = verify_submission(
            source, "solution.py", puzzle, device=device, pool=pool, sandbox=sandbox
        )
        times.append(time.perf_counter() - started)
        assert verdict.passed, verdict.report_md
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puzzle", nargs="*", default=None)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--pool-size", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: robust on a busy box)"
    )
    parser.add_argument("--unsafe-no-sandbox", action="store_true")
    args = parser.parse_args()
    sandbox = not args.unsafe_no_sandbox
    import torch

    torch.set_num_threads(args.threads)

    puzzles = [
        p
        for p in list_puzzles()
        if p.solution_path.is_file()
        and p.weights_path.is_file()
        and (not args.puzzle or p.slug in args.puzzle)
    ]
    print(
        f"end-to-end verify of each reference solution, {args.runs} runs, device {args.device}, "
        f"torch {torch.__version__}, torch threads {args.threads}, "
        f"{'bubblewrap' if sandbox else 'NO sandbox (--unsafe-no-sandbox)'}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    all_pool = []
    for puzzle in puzzles:
        source = puzzle.solution_path.read_bytes()
        try:  # load the model, warm up
            verify_submission(source, "solution.py", puzzle, device=args.device, sandbox=sandbox)
        except Exception as exc:  # a catalog entry being rebuilt right now
            print(f"{puzzle.slug:16s} skipped: {type(exc).__name__}: {str(exc)[:80]}")
            continue
        cold = _run(puzzle, source, args.runs, args.device, None, sandbox)
        with SandboxPool(size=args.pool_size, use_bwrap=sandbox) as pool:
            pool.acquire().close()  # let the first pre-started sandboxes come up
            warm = _run(puzzle, source, args.runs, args.device, pool, sandbox)
        all_pool += warm
        print(
            f"{puzzle.slug:16s} cold p50 {statistics.median(cold):.2f} s p90 {_quantile(cold, 0.9):.2f} s"
            f" | pool p50 {statistics.median(warm):.2f} s p90 {_quantile(warm, 0.9):.2f} s"
            f" | cold/pool {statistics.median(cold) / statistics.median(warm):.2f}x"
        )
    if all_pool:
        p50 = statistics.median(all_pool)
        print(
            f"all puzzles, pool: p50 {p50:.2f} s (target <= 3 s: {'met' if p50 <= 3 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
