"""Deterministic CPU training of the puzzle models, with a progress bar, weights and metrics.

Every batch comes from ``task.generate(batch_size, seed=<seed-derived>)``, the init from the
config seed, and torch runs single-threaded with deterministic algorithms, so the same seed gives
the same weights on the same machine. Training stops at ``steps`` or, when ``target_accuracy``
is set, at the first evaluation that reaches it (the catalog wants good, not perfect, models).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F

from puzzles.catalog import Puzzle
from puzzles.models import (
    build_model,
    component_names,
    load_task,
    model_predictions,
    save_weights,
)

HELDOUT_SEED = 987_654_321
"""Seed of the held-out set whose accuracy puzzle.toml records (never used for training)."""


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    eval_every: int = 250
    target_accuracy: float | None = None
    heldout_size: int = 5000

    @classmethod
    def from_puzzle(cls, puzzle: Puzzle, **overrides: Any) -> TrainConfig:
        raw = {
            k: v
            for k, v in puzzle.config.get("training", {}).items()
            if k in cls.__dataclass_fields__
        }
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**raw)


@dataclass
class TrainResult:
    slug: str
    seed: int
    steps_run: int
    train_seconds: float
    train_cpu_seconds: float
    final_loss: float
    heldout_accuracy: float
    heldout_size: int
    heldout_seed: int
    sequence_accuracy: float
    edge_case_accuracy: float
    per_position_accuracy: list[float]
    ablation_accuracy: dict[str, float] = field(default_factory=dict)
    weights_path: str = ""
    weights_sha256: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """Single thread, deterministic kernels, seeded global RNG; restored afterwards."""
    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(was_deterministic)


def heldout_tokens(task: ModuleType, size: int) -> torch.Tensor:
    return task.generate(size, seed=HELDOUT_SEED)


@torch.no_grad()
def accuracy(model, task: ModuleType, tokens: torch.Tensor) -> tuple[float, float, list[float]]:
    """(answer accuracy, whole-sequence accuracy, per-answer-position accuracy) against labels."""
    correct = model_predictions(model, task, tokens) == task.labels(tokens)
    return (
        correct.float().mean().item(),
        correct.all(-1).float().mean().item(),
        [round(x, 5) for x in correct.float().mean(0).tolist()],
    )


def _component_hook(name: str) -> tuple[str, int | None]:
    match = re.fullmatch(r"L(\d+)(?:H(\d+)|MLP)", name)
    if match is None:
        raise ValueError(f"not a component name: {name!r}")
    layer = int(match.group(1))
    if match.group(2) is None:
        return f"blocks.{layer}.hook_mlp_out", None
    return f"blocks.{layer}.attn.hook_z", int(match.group(2))


@torch.no_grad()
def ablation_accuracy(
    model, task: ModuleType, tokens: torch.Tensor, components: list[str]
) -> dict[str, float]:
    """Task accuracy with each component mean-ablated alone (means over ``tokens``, per position)."""
    targets = task.labels(tokens)
    positions = torch.as_tensor(task.ANSWER_POSITIONS)
    _, cache = model.run_with_cache(tokens)
    out = {}
    for comp in components:
        hook_name, head = _component_hook(comp)
        mean = cache[hook_name].mean(0, keepdim=True)

        def ablate(act, hook, mean=mean, head=head):
            act = act.clone()
            if head is None:
                act[:] = mean
            else:
                act[:, :, head] = mean[:, :, head]
            return act

        logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, ablate)])
        preds = logits[:, positions].argmax(-1)
        out[comp] = round((preds == targets).float().mean().item(), 5)
    return out


def train(
    puzzle: Puzzle,
    *,
    seed: int | None = None,
    out_dir: Path | None = None,
    update_toml: bool = True,
    progress: bool = True,
    steps: int | None = None,
) -> TrainResult:
    """Train the puzzle's model from scratch and write ``weights.safetensors`` + ``metrics.json``.

    Writes into the puzzle directory (and updates puzzle.toml's sha256 and metrics) unless
    ``out_dir`` is given, in which case puzzle.toml is left alone.
    """
    cfg = TrainConfig.from_puzzle(puzzle, seed=seed, steps=steps)
    task = load_task(puzzle)
    target_dir = Path(out_dir) if out_dir is not None else puzzle.path
    heldout = heldout_tokens(task, cfg.heldout_size)

    with deterministic_torch(cfg.seed):
        model = build_model(puzzle, seed=cfg.seed)
        run = _fit(model, task, cfg, heldout, progress=progress, slug=puzzle.slug)
        model.eval()

    acc, seq_acc, per_pos = accuracy(model, task, heldout)
    edge_acc = accuracy(model, task, task.edge_cases())[0]
    ablations = ablation_accuracy(model, task, heldout[:2000], component_names(puzzle))
    weights_path = target_dir / "weights.safetensors"
    sha = save_weights(model, weights_path)
    result = TrainResult(
        slug=puzzle.slug,
        seed=cfg.seed,
        steps_run=run.steps_run,
        train_seconds=round(run.seconds, 1),
        train_cpu_seconds=round(run.cpu_seconds, 1),
        final_loss=round(run.final_loss, 5),
        heldout_accuracy=round(acc, 5),
        heldout_size=cfg.heldout_size,
        heldout_seed=HELDOUT_SEED,
        sequence_accuracy=round(seq_acc, 5),
        edge_case_accuracy=round(edge_acc, 5),
        per_position_accuracy=per_pos,
        ablation_accuracy=ablations,
        weights_path=str(weights_path),
        weights_sha256=sha,
    )
    metrics = result.to_json()
    metrics.pop("weights_path")
    (target_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if update_toml and out_dir is None:
        _record_in_toml(puzzle, result)
    return result


@dataclass(frozen=True)
class _Run:
    steps_run: int
    final_loss: float
    seconds: float
    cpu_seconds: float


def _fit(
    model: Any,
    task: ModuleType,
    cfg: TrainConfig,
    heldout: torch.Tensor,
    *,
    progress: bool,
    slug: str,
) -> _Run:
    """The training loop: AdamW with warm-up then cosine decay, stopping early once held-out
    accuracy reaches ``target_accuracy`` (checked every ``eval_every`` steps)."""
    positions = torch.as_tensor(task.ANSWER_POSITIONS)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(_lr_factor, cfg))
    started = time.monotonic()
    cpu_started = time.process_time()
    loss_value = float("nan")
    steps_run = 0
    with _progress_bar(progress, slug, cfg.steps) as advance:
        for step in range(cfg.steps):
            tokens = task.generate(cfg.batch_size, seed=cfg.seed * 1_000_003 + step + 1)
            targets = task.labels(tokens)
            logits = model(tokens)[:, positions, :]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            steps_run = step + 1
            loss_value = loss.item()
            acc = None
            if cfg.target_accuracy is not None and steps_run % cfg.eval_every == 0:
                model.eval()
                acc = accuracy(model, task, heldout)[0]
                model.train()
            advance(loss_value, acc)
            if acc is not None and cfg.target_accuracy is not None and acc >= cfg.target_accuracy:
                break
    return _Run(
        steps_run=steps_run,
        final_loss=loss_value,
        seconds=time.monotonic() - started,
        cpu_seconds=time.process_time() - cpu_started,
    )


def _lr_factor(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the learning rate."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))


def _record_in_toml(puzzle: Puzzle, result: TrainResult) -> None:
    """The new weights' checksum and the measured metrics, into the puzzle's own puzzle.toml."""
    toml_path = puzzle.path / "puzzle.toml"
    text = toml_path.read_text(encoding="utf-8")
    text = set_toml_values(text, "weights", {"sha256": result.weights_sha256})
    text = set_toml_values(
        text,
        "metrics",
        {
            "heldout_accuracy": result.heldout_accuracy,
            "sequence_accuracy": result.sequence_accuracy,
            "edge_case_accuracy": result.edge_case_accuracy,
            "heldout_size": result.heldout_size,
            "heldout_seed": result.heldout_seed,
            "train_seconds": result.train_seconds,
            "train_cpu_seconds": result.train_cpu_seconds,
            "steps_run": result.steps_run,
            "seed": result.seed,
        },
    )
    toml_path.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def _progress_bar(enabled: bool, slug: str, total: int):
    if not enabled:
        yield lambda loss, acc: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn(f"training {slug}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f} held-out {task.fields[acc]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns) as bar:
        task_id = bar.add_task(slug, total=total, loss=float("nan"), acc="-")

        def advance(loss: float, acc: float | None) -> None:
            fields = {"loss": loss} if acc is None else {"loss": loss, "acc": f"{acc:.4f}"}
            bar.update(task_id, advance=1, **fields)

        yield advance


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def set_toml_values(text: str, section: str, values: dict[str, Any]) -> str:
    """Set scalar ``key = value`` lines in one ``[section]`` of a TOML document, keeping the rest."""
    lines = text.splitlines()
    header = f"[{section}]"
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == header)
    except StopIteration:
        lines += ["", header]
        start = len(lines) - 1
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines)
    )
    remaining = dict(values)
    for i in range(start + 1, end):
        match = re.match(r"^(\s*)([A-Za-z0-9_]+)\s*=", lines[i])
        if match and match.group(2) in remaining:
            key = match.group(2)
            lines[i] = f"{match.group(1)}{key} = {_toml_value(remaining.pop(key))}"
    insert_at = end
    while insert_at > start + 1 and not lines[insert_at - 1].strip():
        insert_at -= 1
    lines[insert_at:insert_at] = [f"{k} = {_toml_value(v)}" for k, v in remaining.items()]
    return "\n".join(lines) + "\n"


def dump_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for catalog entries: scalars and lists at top level, then tables."""
    out = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if isinstance(table, dict):
            out += ["", f"[{name}]"]
            out += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(out) + "\n"
