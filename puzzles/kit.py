"""The participant's kit: README, weights, task code, a standalone loader and a starter notebook.

The kit needs only ``transformer_lens`` and ``safetensors`` (no circuitboard), so it works in
Colab or any notebook server. Hints, the reference solution and the write-up stay out of it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbformat import v4

from puzzles.catalog import Puzzle
from puzzles.models import verify_weights

LOADER = '''"""Load this puzzle's model and task with TransformerLens 4 (no circuitboard needed)."""

import hashlib
import importlib.util
import sys
import tomllib
from pathlib import Path

from safetensors.torch import load_file
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

HERE = Path(__file__).resolve().parent


def load_config() -> dict:
    with open(HERE / "puzzle.toml", "rb") as fh:
        return tomllib.load(fh)


def load_model(device: str = "cpu") -> TransformerBridge:
    config = load_config()
    weights = HERE / config["weights"]["file"]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if digest != config["weights"]["sha256"]:
        raise RuntimeError(f"{weights} does not match the sha256 in puzzle.toml; re-download the kit")
    model_cfg = dict(config["model"])
    if model_cfg.get("normalization_type") == "none":
        model_cfg["normalization_type"] = None  # TOML has no null: "none" means no LayerNorm
    cfg = TransformerBridgeConfig(architecture="TransformerLensNative", **model_cfg)
    model = TransformerBridge.boot_native(cfg)
    model.load_state_dict(load_file(str(weights)), strict=True)
    return model.eval().to(device)


def load_task():
    spec = importlib.util.spec_from_file_location("puzzle_task", HERE / "task.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["puzzle_task"] = module
    spec.loader.exec_module(module)
    return module
'''


def starter_notebook(puzzle: Puzzle) -> nbformat.NotebookNode:
    """Load the model, run it with a cache, check its accuracy, plot an attention pattern."""
    cells = [
        v4.new_markdown_cell(
            f"# {puzzle.title}\n\n{puzzle.summary}\n\nThe full problem statement is in `README.md`."
        ),
        v4.new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "import torch\n\n"
            "from puzzle_model import load_model, load_task\n\n"
            "torch.set_grad_enabled(False)\n"
            "model = load_model()\n"
            "task = load_task()\n"
            "print(model.cfg.n_layers, 'layers,', model.cfg.n_heads, 'heads; vocab:', task.VOCAB)"
        ),
        v4.new_code_cell(
            "tokens = task.generate(512, seed=0)\n"
            "logits, cache = model.run_with_cache(tokens)\n"
            "answers = logits[:, task.ANSWER_POSITIONS].argmax(-1)\n"
            "correct = answers == task.labels(tokens)\n"
            "print(f'accuracy {correct.float().mean():.4f}; examples with a mistake: "
            "{(~correct.all(-1)).sum().item()}')"
        ),
        v4.new_code_cell(
            "layer, head = 0, 0\n"
            "pattern = cache[f'blocks.{layer}.attn.hook_pattern'].mean(0)[head]  # [query, key]\n"
            "fig, ax = plt.subplots(figsize=(5, 5))\n"
            "ax.imshow(pattern, cmap='Blues')\n"
            "ax.set_xlabel('key position'); ax.set_ylabel('query position')\n"
            "ax.set_title(f'L{layer}H{head} mean attention pattern')\n"
            "plt.show()"
        ),
        v4.new_markdown_cell(
            "Next: ablate heads with `model.run_with_hooks(tokens, fwd_hooks=[('blocks.0.attn.hook_z', fn)])` "
            "and write `predict(tokens)` + `CIRCUIT` in a `solution.py`; check it with "
            f"`circuitboard verify solution.py --puzzle {puzzle.slug}`."
        ),
        v4.new_markdown_cell(
            "**Format v2: say how it works.** Add a literal `HYPOTHESIS` naming the variables of "
            "your algorithm and the model site holding each (`'L0H1@END'`, `'resid_post L0 @ 3..5'`), "
            "one function per variable and an `answer` function. The verifier patches each site "
            "from another input and checks the model's answer changes the way your algorithm's "
            "does (IIA per variable). Template (see the README for the full format):\n\n"
            "```python\n"
            "HYPOTHESIS = {\n"
            "    'variables': {'v': {'from': ['tokens'], 'site': 'L0H0@END'}},\n"
            "    'answer': {'from': ['v']},\n"
            "    'attention': [{'head': 'L0H0', 'query': 'END', 'key': 'p-1'}],\n"
            "}\n"
            "def v(tokens): ...        # one row per input\n"
            "def answer(v): ...        # LongTensor [n, k] of class ids\n"
            "```\n\n"
            f"`circuitboard verify solution.py --puzzle {puzzle.slug}` prints the per-claim table "
            "(holds / partly / does not hold) on the public seed."
        ),
    ]
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def build_kit(puzzle: Puzzle, out_dir: Path) -> list[Path]:
    """Write the kit into ``out_dir`` (created if needed); returns the files written."""
    verify_weights(puzzle)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("README.md", "puzzle.toml", "task.py", puzzle.weights_path.name):
        shutil.copyfile(puzzle.path / name, out_dir / name)
        written.append(out_dir / name)
    (out_dir / "puzzle_model.py").write_text(LOADER, encoding="utf-8")
    written.append(out_dir / "puzzle_model.py")
    notebook = out_dir / f"{puzzle.slug}_starter.ipynb"
    nbformat.write(starter_notebook(puzzle), str(notebook))
    written.append(notebook)
    return written
