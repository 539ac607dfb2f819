"""Interchange interventions: the engine vs the naive way, and the cost of one causal check.

Naive = the pool's activations from one ``run_with_cache``, then one full ``run_with_hooks`` on the
TransformerBridge per intervention batch. Engine = one cached clean run (plain torch), each batch
restarting at its first patched sublayer (last layer at the answer positions only). The answers
must be equal. Then: the whole causal check of a 5-variable hypothesis (counterfactuals of the
solver's functions, run in-process here since the code is ours, plus every intervention,
scrubbing and attention claim)::

    python bench/causal.py [--batch 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# the repo root instead of bench/ itself (bench/queue.py would shadow the stdlib's queue)
sys.path[0] = str(Path(__file__).resolve().parents[1])

import torch  # noqa: E402

from puzzles.catalog import get_puzzle  # noqa: E402
from puzzles.models import load_model, load_task  # noqa: E402
from puzzles.verify.ablation import AblationEngine  # noqa: E402
from puzzles.verify.causal import InterventionEngine, Patch, naive_patched_logits  # noqa: E402
from puzzles.verify.causal_check import interventions_for  # noqa: E402
from puzzles.verify.causal_section import check_trusted, declaration, prepare  # noqa: E402

FIVE_VARIABLES = """
HYPOTHESIS = {
    "variables": {
        "right": {"from": ["tokens"], "site": "resid_pre L0 @ 11..20"},
        "mirror_a": {"from": ["tokens"], "site": ["L0H0@11..13", "L0H1@11..13"]},
        "mirror_b": {"from": ["tokens"], "site": ["L0H0@14..17", "L0H1@14..17"]},
        "mirror_c": {"from": ["tokens"], "site": ["L0H0@18..20", "L0H1@18..20"]},
        "is_palindrome": {
            "from": ["right", "mirror_a", "mirror_b", "mirror_c"], "site": "L1H1@END"},
    },
    "answer": {"from": ["is_palindrome"]},
    "attention": [{"head": "L0H0", "query": "11..20", "key": "21-p"}],
}
def right(tokens): return tokens[:, 11:21]
def mirror_a(tokens): return tokens[:, 8:11].flip(-1)
def mirror_b(tokens): return tokens[:, 4:8].flip(-1)
def mirror_c(tokens): return tokens[:, 1:4].flip(-1)
def is_palindrome(right, a, b, c): return (right == torch.cat([a, b, c], 1)).all(-1)
def answer(is_palindrome): return is_palindrome.long()[:, None]
"""


def _median(fn, repeat: int) -> tuple[float, object]:
    fn()
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    puzzle = get_puzzle("palindromes")
    model, task = load_model(puzzle, device=args.device), load_task(puzzle)
    tokens = task.generate(args.batch, 7).to(args.device)
    config = dict(puzzle.verify)
    source = "import torch\n" + FIVE_VARIABLES
    with torch.no_grad():
        engine = AblationEngine(model, tokens, answer_positions=task.ANSWER_POSITIONS)
    plan = prepare(declaration(source), engine, task, config, seed=7)
    assert plan.job is not None, plan.error
    variables = {v.name: v for v in plan.job.hypothesis.variables}
    batches = []
    for i, names in enumerate(interventions_for(plan.job.hypothesis)):
        pairs = plan.job.pairs[i][:256]
        patches = [Patch(s, pairs[:, 1]) for n in names for s in variables[n].sites]
        batches.append((pairs[:, 0], patches))

    inter = InterventionEngine(engine)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)

    def clean_engine():
        with torch.no_grad():
            return AblationEngine(model, tokens, answer_positions=task.ANSWER_POSITIONS)

    def clean_naive():
        with torch.no_grad():
            return model.run_with_cache(tokens)

    def run_engine():
        return [inter.logits(b, p) for b, p in batches]

    def run_naive():
        with torch.no_grad():
            return [naive_patched_logits(model, engine, b, p, cache) for b, p in batches]

    # interleaved, so load on a shared machine hits both alike
    engine_s, naive_s, ours, theirs = [], [], None, None
    for _ in range(args.repeat):
        seconds, ours = _median(run_engine, 1)
        engine_s.append(seconds)
        seconds, theirs = _median(run_naive, 1)
        naive_s.append(seconds)
    engine_t, naive_t = statistics.median(engine_s), statistics.median(naive_s)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    clean_e, _ = _median(clean_engine, args.repeat)
    clean_n, _ = _median(clean_naive, args.repeat)
    n_batches = len(batches)
    print(
        f"{n_batches} intervention batches of 256 pairs, pool {args.batch}: engine "
        f"{engine_t * 1e3:.0f} ms vs naive {naive_t * 1e3:.0f} ms: {naive_t / engine_t:.1f}x "
        f"(same logits); clean run of the pool (once per check, shared): engine "
        f"{clean_e * 1e3:.0f} ms vs run_with_cache {clean_n * 1e3:.0f} ms; in all "
        f"{(naive_t + clean_n) / (engine_t + clean_e):.1f}x"
    )
    check_s, check = _median(
        lambda: check_trusted(source, engine, task, config, seed=7), max(1, args.repeat // 2)
    )
    if not check.passed and not check.details:
        raise SystemExit(f"the 5-variable hypothesis did not run: {check.message}")
    print(
        f"causal check of a 5-variable hypothesis (5 + joint interventions, 5 scrubbings, "
        f"1 attention claim), pool {args.batch}: {check_s:.2f} s (passed: {check.passed})"
    )


if __name__ == "__main__":
    main()
