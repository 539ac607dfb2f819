"""Puzzle models: TransformerLens 4 native ``TransformerBridge`` models, checksummed weights, tasks.

Weights are safetensors files whose sha256 is recorded in puzzle.toml and checked before a single
byte is deserialised, so a tampered or half-written file is refused with a clear message.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.sources import boot_native

from puzzles.catalog import Puzzle

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "WeightsChecksumError",
    "bridge_config",
    "build_model",
    "component_names",
    "load_model",
    "load_task",
    "model_predictions",
    "save_weights",
    "sha256_file",
    "verify_weights",
]


class WeightsChecksumError(RuntimeError):
    """The weights file is missing or its sha256 differs from the one recorded in puzzle.toml."""


def bridge_config(puzzle_or_model_config: Puzzle | Mapping[str, Any]) -> TransformerBridgeConfig:
    """A ``TransformerBridgeConfig`` from a puzzle's ``[model]`` table (or that table itself)."""
    if isinstance(puzzle_or_model_config, Puzzle):
        raw = puzzle_or_model_config.model_config
    else:
        raw = dict(puzzle_or_model_config)
    raw.setdefault("architecture", "TransformerLensNative")
    if raw.get("normalization_type") in ("none", "None", ""):
        raw["normalization_type"] = None
    return TransformerBridgeConfig(**raw)


def build_model(
    puzzle_or_model_config: Puzzle | Mapping[str, Any] | TransformerBridgeConfig,
    *,
    device: str = "cpu",
    seed: int | None = None,
) -> TransformerBridge:
    """A freshly initialised native model with the puzzle's architecture (``seed`` fixes the init)."""
    if isinstance(puzzle_or_model_config, TransformerBridgeConfig):
        cfg = puzzle_or_model_config
    else:
        cfg = bridge_config(puzzle_or_model_config)
    if seed is not None:
        cfg.seed = seed
    return boot_native(cfg, device=device)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(puzzle: Puzzle) -> None:
    """Raise ``WeightsChecksumError`` unless the weights file matches the recorded sha256."""
    path = puzzle.weights_path
    if not path.is_file():
        raise WeightsChecksumError(f"puzzle {puzzle.slug!r}: weights file {path} is missing")
    if not puzzle.weights_sha256:
        raise WeightsChecksumError(f"puzzle {puzzle.slug!r}: puzzle.toml records no weights sha256")
    actual = sha256_file(path)
    if actual != puzzle.weights_sha256:
        raise WeightsChecksumError(
            f"puzzle {puzzle.slug!r}: weights file {path.name} has sha256 {actual}, but puzzle.toml "
            f"records {puzzle.weights_sha256}; the file was modified or corrupted, refusing to load "
            f"it (retrain with `circuitboard puzzles train {puzzle.slug}` or restore the file)"
        )


def load_model(puzzle: Puzzle, *, device: str = "cpu") -> TransformerBridge:
    """The puzzle's trained model in eval mode; the weights' sha256 is checked before loading."""
    verify_weights(puzzle)
    model = build_model(puzzle, device="cpu")
    state = load_file(str(puzzle.weights_path), device="cpu")
    model.load_state_dict(state, strict=True)
    model.eval()
    return model.to(device) if device != "cpu" else model


def save_weights(model: TransformerBridge, path: Path) -> str:
    """Write the model's state dict as safetensors; returns the file's sha256."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    # One metadata key only: safetensors writes the metadata map in hash order, so several keys
    # would make the bytes (and the recorded sha256) differ between identical trainings.
    save_file(state, str(path), metadata={"format": "pt"})
    return sha256_file(path)


def load_task(puzzle: Puzzle) -> ModuleType:
    """Import the puzzle's ``task.py`` (once per file version) as its own module."""
    path = puzzle.task_path
    if not path.is_file():
        raise FileNotFoundError(f"puzzle {puzzle.slug!r} has no task.py at {path}")
    stamp = path.stat().st_mtime_ns
    name = f"circuitboard_puzzle_task_{puzzle.slug}"
    cached = sys.modules.get(name)
    if (
        cached is not None
        and getattr(cached, "__file__", None) == str(path)
        and getattr(cached, "_circuitboard_stamp", None) == stamp
    ):
        return cached
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    module._circuitboard_stamp = stamp  # type: ignore[attr-defined]
    return module


@torch.no_grad()
def model_predictions(
    model: TransformerBridge, task: ModuleType, tokens: torch.Tensor, *, batch_size: int = 2048
) -> torch.Tensor:
    """The model's answers ``[n, k]``: argmax of the logits at the task's answer positions."""
    positions = torch.as_tensor(task.ANSWER_POSITIONS)
    out = []
    for start in range(0, tokens.shape[0], batch_size):
        logits = model(tokens[start : start + batch_size])
        out.append(logits[:, positions, :].argmax(-1))
    return torch.cat(out)


def component_names(puzzle_or_model_config: Puzzle | Mapping[str, Any]) -> list[str]:
    """Every ablatable component in TransformerLens naming: ``L{l}H{h}`` and ``L{l}MLP``."""
    cfg = bridge_config(puzzle_or_model_config)
    names = []
    for layer in range(cfg.n_layers):
        names += [f"L{layer}H{h}" for h in range(cfg.n_heads)]
        if not cfg.attn_only:
            names.append(f"L{layer}MLP")
    return names
