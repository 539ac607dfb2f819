"""The circuit check: the ablation engine vs the naive way, on the same model, batch and circuit.

Naive = one full ``run_with_hooks`` on the TransformerBridge per ablation variant (plus one
``run_with_cache`` for the means and one clean run). Engine = one cached clean run, then each
variant recomputes only from its first ablated sublayer (last layer at the answer positions only).
Both feed the same ``circuit_check`` scoring; the scores must be equal. Prints medians and ratios::

    python bench/ablation.py [--puzzle palindromes] [--batch 1000] [--repeat 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
import time
from pathlib import Path

# the repo root instead of bench/ itself (bench/queue.py would shadow the stdlib's queue)
sys.path[0] = str(Path(__file__).resolve().parents[1])

import torch  # noqa: E402

from puzzles.catalog import get_puzzle  # noqa: E402
from puzzles.models import load_model, load_task  # noqa: E402
from puzzles.verify.ablation import AblationEngine, Mask, naive_logits  # noqa: E402
from puzzles.verify.circuit_check import circuit_check  # noqa: E402
from puzzles.verify.components import all_components, parse_circuit  # noqa: E402


class NaiveEngine:
    """Same interface as AblationEngine; every variant is a full hooked forward of the bridge."""

    def __init__(self, model, tokens, *, answer_positions) -> None:
        self.model = model
        self.answer_positions = torch.as_tensor(list(answer_positions), device=tokens.device)
        self.ablation = "mean"
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens)
        # the means used for ablation (what every variant's hooks write)
        self._reference = AblationEngine.__new__(AblationEngine)
        ref = self._reference
        ref.n_layers, ref.attn_only = model.cfg.n_layers, bool(model.cfg.attn_only)
        ref.n_heads, ref.seq = model.cfg.n_heads, tokens.shape[1]
        ref.device, ref.tokens, ref.answer_positions = tokens.device, tokens, self.answer_positions
        ref.z_ablated = [
            cache[f"blocks.{layer}.attn.hook_z"].mean(0, keepdim=True)
            for layer in range(ref.n_layers)
        ]
        ref.pattern_ablated = [
            cache[f"blocks.{layer}.attn.hook_pattern"].mean(0, keepdim=True)
            for layer in range(ref.n_layers)
        ]
        ref.v_ablated = [  # [1, heads, seq, d_head], as the engine keeps its values
            cache[f"blocks.{layer}.attn.hook_v"].mean(0, keepdim=True).transpose(1, 2)
            for layer in range(ref.n_layers)
        ]
        ref._ablated_ready = True
        self.n_layers, self.seq, self.attn_only = ref.n_layers, ref.seq, ref.attn_only
        ref.mlp_ablated = [
            None if ref.attn_only else cache[f"blocks.{layer}.hook_mlp_out"].mean(0, keepdim=True)
            for layer in range(ref.n_layers)
        ]
        self.clean_logits = self.logits(ref.full_mask())

    def mask_for(self, components) -> Mask:
        return AblationEngine.mask_for(self._reference, components)

    def logits(self, mask: Mask) -> torch.Tensor:
        return naive_logits(self.model, self._reference, mask)


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return device


def _circuit_of(puzzle) -> list[str]:
    for node in ast.parse(puzzle.solution_path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", "") == "CIRCUIT" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise SystemExit(f"{puzzle.slug}: no literal CIRCUIT in solution.py")


def _synced(fn, device: str):
    """``fn`` then a wait for the GPU: CUDA kernels run asynchronously, a bare timer would
    measure only their launch."""
    if not device.startswith("cuda"):
        return fn

    def run():
        result = fn()
        torch.cuda.synchronize()
        return result

    return run


def _sync_after(device: str):
    return lambda fn: _synced(fn, device)


def _median_time(fn, repeat: int) -> tuple[float, object]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puzzle", default="palindromes")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: robust on a busy box)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    puzzle = get_puzzle(args.puzzle)
    model, task = load_model(puzzle, device=args.device), load_task(puzzle)
    tokens = task.generate(args.batch, 1).to(args.device)
    cfg = model.cfg
    kw = {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "attn_only": bool(cfg.attn_only)}
    circuits = {
        "reference CIRCUIT": parse_circuit(_circuit_of(puzzle), seq_len=task.SEQ_LEN, **kw),
        "every component": all_components(**kw),
    }
    config = dict(puzzle.verify)
    positions = task.ANSWER_POSITIONS
    print(
        f"{puzzle.slug}: {cfg.n_layers} layers x {cfg.n_heads} heads, batch {args.batch}, "
        f"device {_device_name(args.device)}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}"
    )

    with torch.no_grad():
        raw = AblationEngine(model, tokens, answer_positions=task.ANSWER_POSITIONS)
        # one forward in plain torch: the same weights without the bridge's hook wrappers
        plain, _ = _median_time(_synced(raw._clean_run, args.device), args.repeat)
        bridge, _ = _median_time(_synced(lambda: model(tokens), args.device), args.repeat)
    print(
        f"one plain torch forward {plain * 1e3:.1f} ms; "
        f"one TransformerBridge forward {bridge * 1e3:.1f} ms"
    )

    for label, circuit in circuits.items():
        variants = len(circuit) + 2

        @_sync_after(args.device)
        def engine_run(circuit=circuit):
            engine = AblationEngine(model, tokens, answer_positions=positions)
            return circuit_check(engine, circuit, config=config)

        @_sync_after(args.device)
        def naive_run(circuit=circuit):
            engine = NaiveEngine(model, tokens, answer_positions=positions)
            return circuit_check(engine, circuit, config=config)

        # interleaved, so both see the same machine load
        engine_run(), naive_run()
        engine_times, naive_times = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            fast = engine_run()
            engine_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            slow = naive_run()
            naive_times.append(time.perf_counter() - started)
        t_engine, t_naive = statistics.median(engine_times), statistics.median(naive_times)
        for key in ("faithfulness", "minimality", "metric_circuit", "metric_empty"):
            a, b = fast.details[key], slow.details[key]
            assert abs(a - b) < 1e-6, (key, a, b)
        for name, value in fast.details["necessity"].items():
            assert abs(value - slow.details["necessity"][name]) < 1e-6, name
        print(
            f"{label} ({len(circuit)} entries, {variants} ablated variants + clean): "
            f"engine {t_engine * 1e3:.1f} ms, naive {t_naive * 1e3:.1f} ms -> "
            f"{t_naive / t_engine:.2f}x faster; engine = {t_engine / plain:.2f} plain forwards "
            f"(naive = {t_naive / plain:.2f}); scores equal "
            f"(faithfulness {fast.details['faithfulness']:.4f})"
        )


if __name__ == "__main__":
    main()
