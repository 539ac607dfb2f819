"""The participant kit: files present and the starter notebook executes top to bottom."""

from __future__ import annotations

import os

import nbformat
import pytest

from puzzles.catalog import get_puzzle
from puzzles.kit import build_kit


def test_kit_notebook_executes(tmp_path, monkeypatch) -> None:
    from nbclient import NotebookClient

    puzzle = get_puzzle("palindromes")
    files = build_kit(puzzle, tmp_path / "kit")
    names = {f.name for f in files}
    assert {
        "README.md",
        "puzzle.toml",
        "task.py",
        "weights.safetensors",
        "puzzle_model.py",
    } <= names
    assert not {"solution.py", "hints.md", "writeup.md"} & names
    notebook = tmp_path / "kit" / "palindromes_starter.ipynb"
    nb = nbformat.read(str(notebook), as_version=4)
    nbformat.validate(nb)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "run_with_cache" in source and "hook_pattern" in source and "imshow" in source
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(filter(None, [str(tmp_path / "kit"), os.environ.get("PYTHONPATH")])),
    )
    client = NotebookClient(
        nb,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path / "kit")}},
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "accuracy 0.9" in text or "accuracy 1.0" in text
    # Format v2: the hand-made interchange runs, and the template it writes is a valid hypothesis.
    assert "IIA of the empty claim: 1.00" in text
    from puzzles.verify.hypothesis import find_declaration, parse_hypothesis

    template = (tmp_path / "kit" / "my_hypothesis.py").read_text()
    hypothesis = parse_hypothesis(
        find_declaration(template),
        n_layers=2,
        n_heads=2,
        attn_only=True,
        seq_len=22,
        d_model=28,
        d_head=14,
    )
    assert [v.name for v in hypothesis.variables] == ["v"]


def test_kit_refuses_tampered_weights(tmp_path) -> None:
    import shutil

    from puzzles.catalog import load_puzzle_dir
    from puzzles.models import WeightsChecksumError

    copy = tmp_path / "palindromes"
    shutil.copytree(get_puzzle("palindromes").path, copy)
    (copy / "weights.safetensors").write_bytes(b"not weights")
    with pytest.raises(WeightsChecksumError):
        build_kit(load_puzzle_dir(copy), tmp_path / "kit")
