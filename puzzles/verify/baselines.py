"""Cheat submissions generated per puzzle: what a pass must never certify.

* :func:`weight_copy_source`: the shipped weights, base64 in a string, and a plain torch forward
  pass: it replicates the model perfectly without explaining anything.
* :func:`task_rule_source`: ``predict`` is the task's correct answer (``task.py``'s ``labels``,
  never looking at the model) and ``CIRCUIT`` names every component.

Tests and calibration run them to show both directions: the reference passes, these fail.
"""

from __future__ import annotations

import ast
import base64
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from puzzles.catalog import Puzzle

_FORWARD = """
import base64
import io
import math

import torch
from safetensors.torch import load

W = load(base64.b64decode(WEIGHTS))
CFG = {cfg!r}


def _norm(x, name):
    if CFG["normalization_type"] in (None, "none", "None", ""):
        return x
    x = x - x.mean(-1, keepdim=True)
    x = x / (x.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
    return x * W[name + ".weight"] + W[name + ".bias"]


def _linear(x, name):
    return x @ W[name + ".weight"].T + W[name + ".bias"]


def predict(tokens):
    n, seq = tokens.shape
    x = W["embed.weight"][tokens] + W["pos_embed.weight"][:seq]
    heads, d_head = CFG["n_heads"], CFG["d_head"]
    causal = CFG.get("attention_dir", "causal") != "bidirectional"
    for layer in range(CFG["n_layers"]):
        p = f"blocks.{{layer}}"
        h = _norm(x, p + ".ln1")
        q, k, v = (
            _linear(h, f"{{p}}.attn.{{m}}").view(n, seq, heads, d_head).transpose(1, 2)
            for m in "qkv"
        )
        scores = q @ k.transpose(-1, -2) / math.sqrt(d_head)
        if causal:
            mask = torch.ones(seq, seq, dtype=torch.bool).triu(1)
            scores = scores.masked_fill(mask, float("-inf"))
        z = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, seq, heads * d_head)
        x = x + _linear(z, p + ".attn.o")
        if not CFG["attn_only"]:
            h = _norm(x, p + ".ln2")
            x = x + _linear(torch.relu(_linear(h, p + ".mlp.in")), p + ".mlp.out")
    logits = _linear(_norm(x, "ln_final"), "unembed")
    return logits[:, ANSWER_POSITIONS].argmax(-1)
"""


def task_constants(puzzle: Puzzle) -> dict[str, object]:
    """The simple module-level constants of the (trusted) task.py, e.g. ``ANSWER_POSITIONS``,
    without importing it: importing the model stack costs seconds to minutes on a busy machine."""
    namespace: dict[str, object] = {}
    tree = ast.parse(puzzle.task_path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            module = ast.fix_missing_locations(ast.Module(body=[node], type_ignores=[]))
            with contextlib.suppress(Exception):  # e.g. numpy tables: not needed, skipped
                exec(compile(module, str(puzzle.task_path), "exec"), namespace)
    return namespace


def weight_copy_source(puzzle: Puzzle) -> str:
    """A submission embedding ``puzzle``'s weights (base64) with a forward pass in plain torch."""
    model = puzzle.model_config
    cfg = {
        key: model.get(key)
        for key in ("n_layers", "n_heads", "d_head", "attn_only", "normalization_type")
    }
    cfg["attention_dir"] = model.get("attention_dir", "causal")
    if model.get("act_fn", "relu") != "relu":
        raise ValueError(f"{puzzle.slug}: weight_copy_source knows relu MLPs only")
    weights = base64.b64encode(puzzle.weights_path.read_bytes()).decode()
    positions = list(task_constants(puzzle)["ANSWER_POSITIONS"])  # type: ignore[call-overload]
    return (
        f'"""A copy of the {puzzle.slug} weights: the cheat the static scan must refuse."""\n'
        f"WEIGHTS = {weights!r}\nANSWER_POSITIONS = {positions!r}\n" + _FORWARD.format(cfg=cfg)
    )


def every_component(puzzle: Puzzle) -> list[str]:
    """Every head and MLP of the puzzle's model, at every position."""
    model = puzzle.model_config
    names = []
    for layer in range(int(model["n_layers"])):
        names += [f"L{layer}H{h}" for h in range(int(model["n_heads"]))]
        if not model.get("attn_only", False):
            names.append(f"L{layer}MLP")
    return names


class _DropGenerators(ast.NodeTransformer):
    """Keep what ``labels`` needs; drop data generation (word lists, RNG code) and docstrings."""

    def __init__(self, keep: set[str]) -> None:
        self.keep = keep

    def visit_Module(self, node: ast.Module) -> ast.Module:
        node.body = [
            s
            for s in node.body
            if not (isinstance(s, ast.FunctionDef) and s.name not in self.keep)
            and not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
        ]
        return node


def _needed_functions(tree: ast.Module, root: str) -> set[str]:
    functions = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef)}
    keep, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name in keep or name not in functions:
            continue
        keep.add(name)
        todo += [n.id for n in ast.walk(functions[name]) if isinstance(n, ast.Name)]
    return keep


def task_rule_source(puzzle: Puzzle) -> str:
    """A submission whose ``predict`` is the task's rule (``labels`` from task.py) and whose
    ``CIRCUIT`` is every component: right about the task, silent about the model."""
    tree = ast.parse(puzzle.task_path.read_text(encoding="utf-8"))
    tree = _DropGenerators(_needed_functions(tree, "labels")).visit(tree)
    rule = ast.unparse(tree)
    return (
        f'"""The task rule for {puzzle.slug}, every component claimed."""\n'
        f"{rule}\n\n\nCIRCUIT = {every_component(puzzle)!r}\n\n\n"
        "def predict(tokens):\n"
        "    return torch.as_tensor(labels(tokens)).reshape(tokens.shape[0], -1).long()\n"
    )
