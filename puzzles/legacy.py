"""Import legacy HookedTransformer checkpoints (``blocks.0.attn.W_Q`` ...) as catalog entries.

Older community puzzles shipped ``HookedTransformer.state_dict()`` pickles plus a config JSON.
They are read with ``torch.load(weights_only=True)`` (tensors only, no arbitrary objects),
converted with TransformerLens' ``convert_tl_checkpoint``, loaded strictly into a native
``TransformerBridge`` and re-saved as checksummed safetensors.
"""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path
from typing import Any

import einops
import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

from puzzles.catalog import CATALOG_DIR, SLUG_RE, Puzzle, get_puzzle, load_puzzle_dir
from puzzles.models import bridge_config, build_model, save_weights
from puzzles.training import dump_toml

_BRIDGE_KEYS = set(inspect.signature(TransformerBridgeConfig.__init__).parameters) - {"self"}
_MODEL_KEYS = (
    "n_layers", "n_heads", "d_model", "d_head", "d_mlp", "n_ctx", "d_vocab", "d_vocab_out",
    "attn_only", "normalization_type", "act_fn", "positional_embedding_type", "attention_dir",
    "n_key_value_heads", "eps", "final_rms", "gated_mlp", "rotary_dim", "rotary_base",
    "use_attn_scale", "attn_scale",
)  # fmt: skip


class LegacyImportError(ValueError):
    """The checkpoint or its config cannot be imported (clear, user-facing message)."""


def legacy_model_config(raw: dict[str, Any]) -> dict[str, Any]:
    """The catalog ``[model]`` table from a HookedTransformerConfig dict (unknown keys dropped)."""
    cfg = {k: raw[k] for k in _MODEL_KEYS if k in raw and k in _BRIDGE_KEYS}
    missing = [k for k in ("n_layers", "d_model", "d_head", "n_ctx", "d_vocab") if k not in cfg]
    if missing:
        raise LegacyImportError(f"config is missing {', '.join(missing)}")
    if cfg.get("d_vocab_out", -1) in (-1, None):
        cfg["d_vocab_out"] = cfg["d_vocab"]
    if cfg.get("n_heads", -1) in (-1, None):
        cfg["n_heads"] = cfg["d_model"] // cfg["d_head"]
    if cfg.get("d_mlp") is None:
        cfg.pop("d_mlp", None)
    if cfg.get("normalization_type", "LN") is None:
        cfg["normalization_type"] = "none"
    return cfg


def load_legacy_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors only: ``torch.load(weights_only=True)``; unwraps ``{"state_dict": ...}``/``{"model": ...}``."""
    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, non-tensor objects
        raise LegacyImportError(f"cannot read {path} as a tensors-only checkpoint: {exc}") from exc
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise LegacyImportError(f"{path} does not hold a state dict of tensors")
    return obj


def convert_legacy(
    state: dict[str, torch.Tensor], model_config: dict[str, Any]
) -> TransformerBridge:
    """A native bridge holding the legacy weights; strict loading, so nothing is silently dropped."""
    cfg = bridge_config(model_config)
    try:
        converted = convert_tl_checkpoint(state, cfg)
        model = build_model(cfg)
        model.load_state_dict(converted, strict=True)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise LegacyImportError(f"checkpoint does not match the config: {exc}") from exc
    return model.eval()


def export_legacy_state_dict(model: TransformerBridge) -> dict[str, torch.Tensor]:
    """The inverse mapping: a HookedTransformer-layout state dict (for old tools and tests)."""
    cfg = model.cfg
    out: dict[str, torch.Tensor] = {}
    for key, t in model.state_dict().items():
        out.update(_legacy_entry(key, t, n_heads=cfg.n_heads))
    for layer in range(cfg.n_layers):  # buffers HookedTransformer saved alongside the weights
        out[f"blocks.{layer}.attn.mask"] = torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx)).bool()
        out[f"blocks.{layer}.attn.IGNORE"] = torch.tensor(-1e5)
    return {k: v.detach().clone() for k, v in out.items()}


_TOP_LEVEL = {
    "embed.weight": ("embed.W_E", False),
    "pos_embed.weight": ("pos_embed.W_pos", False),
    "unembed.weight": ("unembed.W_U", True),
    "unembed.bias": ("unembed.b_U", False),
}


def _legacy_entry(key: str, t: torch.Tensor, *, n_heads: int) -> dict[str, torch.Tensor]:
    """One bridge state-dict entry under its HookedTransformer name (and shape)."""
    heads = {"n_heads": n_heads}
    prefix, _, leaf = key.rpartition(".")
    if key in _TOP_LEVEL:
        name, transpose = _TOP_LEVEL[key]
        return {name: t.T.contiguous() if transpose else t}
    if prefix.endswith((".attn.q", ".attn.k", ".attn.v")):
        name, base = prefix[-1].upper(), prefix[:-2]
        if leaf == "weight":
            pattern = "(n_heads d_head) d_model -> n_heads d_model d_head"
            return {f"{base}.W_{name}": einops.rearrange(t, pattern, **heads)}
        return {
            f"{base}.b_{name}": einops.rearrange(t, "(n_heads d_head) -> n_heads d_head", **heads)
        }
    if prefix.endswith(".attn.o"):
        base = prefix[:-2]
        if leaf == "weight":
            pattern = "d_model (n_heads d_head) -> n_heads d_head d_model"
            return {f"{base}.W_O": einops.rearrange(t, pattern, **heads)}
        return {f"{base}.b_O": t}
    if prefix.endswith((".mlp.in", ".mlp.out")):
        base, _, which = prefix.rpartition(".")
        weight = leaf == "weight"
        return {f"{base}.{'W' if weight else 'b'}_{which}": t.T.contiguous() if weight else t}
    if leaf in ("weight", "bias"):  # LayerNorms: ln1, ln2, ln_final
        return {f"{prefix}.{'w' if leaf == 'weight' else 'b'}": t}
    raise ValueError(f"no legacy name for {key}")


def import_legacy(
    checkpoint: Path,
    config_path: Path,
    slug: str,
    *,
    task: str | Path,
    title: str | None = None,
    catalog_root: Path = CATALOG_DIR,
) -> Puzzle:
    """Write ``catalog_root/slug/`` from a legacy checkpoint and a HookedTransformerConfig JSON.

    ``task`` is the slug of an existing puzzle or a path to a ``task.py`` (the checkpoint says
    nothing about the data). Held-out accuracy is measured on that task before writing.
    """
    from puzzles.models import load_task
    from puzzles.training import HELDOUT_SEED, accuracy

    if not SLUG_RE.match(slug):
        raise LegacyImportError(f"slug {slug!r} must match {SLUG_RE.pattern}")
    target = Path(catalog_root) / slug
    if target.exists():
        raise LegacyImportError(f"{target} already exists; pick another slug")
    try:
        raw_cfg = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LegacyImportError(f"cannot read config {config_path}: {exc}") from exc
    model_cfg = legacy_model_config(raw_cfg)
    model = convert_legacy(load_legacy_state_dict(checkpoint), model_cfg)

    task_path = Path(task)
    if not task_path.is_file():
        task_path = get_puzzle(str(task)).task_path
    target.mkdir(parents=True)
    try:
        shutil.copyfile(task_path, target / "task.py")
        sha = save_weights(model, target / "weights.safetensors")
        title = title or slug.replace("_", " ").capitalize()
        config = {
            "slug": slug,
            "title": title,
            "summary": f"Imported from the legacy checkpoint {Path(checkpoint).name}.",
            "version": 1,
            "task": {"imported_from": Path(checkpoint).name},
            "model": model_cfg,
            "weights": {"file": "weights.safetensors", "sha256": sha},
            "metrics": {"heldout_accuracy": 0.0},
            "verify": {
                "checks": ["replication"],
                "metric": "accuracy",
                "replication_threshold": 0.99,
                "heldout_size": 2000,
                "device": "cpu",
            },
        }
        (target / "puzzle.toml").write_text(dump_toml(config), encoding="utf-8")
        (target / "README.md").write_text(
            f"# {title}\n\nImported legacy puzzle; write the problem statement here.\n",
            encoding="utf-8",
        )
        (target / "hints.md").write_text("# Hints\n\n## Hint 1\nTo be written.\n", encoding="utf-8")
        (target / "writeup.md").write_text("# Mechanism\n\nTo be written.\n", encoding="utf-8")
        (target / "solution.py").write_text(
            '"""Reference solution: to be written."""\n\nCIRCUIT = []\n\n\n'
            "def predict(tokens):\n    raise NotImplementedError\n",
            encoding="utf-8",
        )
        puzzle = load_puzzle_dir(target)
        task_module = load_task(puzzle)
        acc = accuracy(model, task_module, task_module.generate(2000, seed=HELDOUT_SEED))[0]
        config["metrics"] = {
            "heldout_accuracy": round(acc, 5),
            "heldout_size": 2000,
            "heldout_seed": HELDOUT_SEED,
        }
        (target / "puzzle.toml").write_text(dump_toml(config), encoding="utf-8")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return load_puzzle_dir(target)
