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


INTERCHANGE_CELL = '''\
def patched_answers(base, source, hook_name, positions, head=None):
    """The model's answers on `base` with `hook_name` at `positions` (and `head`) taken
    from the run on `source`, row by row: one interchange intervention."""
    _, source_cache = model.run_with_cache(source)
    pos = torch.as_tensor(positions)

    def patch(act, hook):
        if head is None:
            act[:, pos] = source_cache[hook_name][:, pos]
        else:
            act[:, pos, head] = source_cache[hook_name][:, pos, head]
        return act

    logits = model.run_with_hooks(base, fwd_hooks=[(hook_name, patch)])
    return logits[:, task.ANSWER_POSITIONS].argmax(-1)


def model_answers(tokens):
    return model(tokens)[:, task.ANSWER_POSITIONS].argmax(-1)


base, source = task.generate(256, seed=1), task.generate(256, seed=2)
# A claim that is true and says nothing: "the answer is computed from the input", held in the
# residual stream before layer 0 at every position. Patching it gives the source's answers.
every = list(range(base.shape[1]))
patched = patched_answers(base, source, "blocks.0.hook_resid_pre", every)
iia = (patched == model_answers(source)).all(-1).float().mean()
print(f"IIA of the empty claim: {iia:.2f}")

# Your claim: run your algorithm on `base` with your variable set to its value on `source`
# (your_answer), patch the site you name, e.g. head 0 of layer 0 at the last position
# ("L0H0@END"), and compare: IIA = (patched == your_answer).all(-1).float().mean().
patched = patched_answers(base, source, "blocks.0.attn.hook_z", [-1], head=0)
changed = (patched != model_answers(base)).any(-1).float().mean()
print(f"patching L0H0@END from the source changes the answer on {changed:.0%} of inputs")
'''

TEMPLATE_CELL = """\
TEMPLATE = '''\\
import torch

HYPOTHESIS = {
    "variables": {
        # what the variable is computed from, and where the model holds it
        "v": {"from": ["tokens"], "site": "L0H0@END", "means": "..."},
    },
    "answer": {"from": ["v"]},
    # optional claims such as {"head": "L0H0", "query": "5..9", "key": "p-1"}
    "attention": [],
}


def v(tokens):  # one row per input
    raise NotImplementedError("your variable")


def answer(v):  # LongTensor [n, k] of class ids, computed from the variables only
    raise NotImplementedError("your algorithm")
'''
with open("my_hypothesis.py", "w") as f:
    f.write(TEMPLATE)
print(open("my_hypothesis.py").read())
"""


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
            f"`circuitboard verify solution.py --puzzle {puzzle.slug}`. `CIRCUIT` entries name "
            "heads and MLPs (`'L1H0'`, `'L0MLP'`), optionally at query positions (`'L1H0@END'`, "
            "`'L0H1@4..END'`), and a head's QK or OV path alone (`'L0H0.OV'`: its values kept, "
            "its attention pattern replaced by the mean pattern)."
        ),
        v4.new_markdown_cell(
            "**Format v2: say how it works.** Add a literal `HYPOTHESIS` naming the variables of "
            "your algorithm and the model site holding each (`'L0H1@END'`, `'resid_post L0 @ 3..5'`), "
            "one function per variable and an `answer` function. The verifier patches each site "
            "from another input (the *source*) while the model reads the *base* input, and checks "
            "that the model's answer changes the way your algorithm's does when that variable is "
            "set to its source value: the interchange intervention accuracy (IIA) per variable. "
            "The next cell does one such intervention by hand, to try a site before writing it down."
        ),
        v4.new_code_cell(INTERCHANGE_CELL.strip()),
        v4.new_markdown_cell(
            "Then write the hypothesis down in a file. Sites are named places only (a head or an "
            "MLP at positions, the residual stream at a layer and positions): no learned maps. The "
            "verifier runs your functions in a sandbox, so the file must not import this kit."
        ),
        v4.new_code_cell(TEMPLATE_CELL.strip()),
        v4.new_markdown_cell(
            "Fill in the functions, then check the file offline on the public seed:\n\n"
            f"    circuitboard verify my_hypothesis.py --puzzle {puzzle.slug}\n\n"
            "It prints the same per-claim table as the server's verdict: each variable's IIA "
            "(where your algorithm says the answer changes / stays), the share of its site's effect "
            "kept under causal scrubbing, and *holds / partly / does not hold* with the kind of "
            "input where a claim fails; then all variables together and each attention claim. "
            "`--json` gives the per-variable IIA under `checks.causal.details.iia`, `--plot out.png` "
            "the IIA bars. The server checks the same file on a secret seed. The README's "
            '"Format v2" section has a worked example.'
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
