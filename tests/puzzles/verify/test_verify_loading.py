"""Submission loading: every bad upload becomes a clear message before anything runs."""

from __future__ import annotations

import nbformat
import pytest

from puzzles.verify.submission import MAX_SUBMISSION_BYTES, SubmissionError, load_submission

GOOD = "import torch\nCIRCUIT = ['L0H0']\n\ndef predict(tokens):\n    return tokens[:, 0]\n"


def _notebook(*cells: tuple[str, str]) -> bytes:
    nb = nbformat.v4.new_notebook()
    for kind, text in cells:
        maker = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        nb.cells.append(maker(text))
    return nbformat.writes(nb).encode()


def test_python_file_loads_and_names_what_it_defines() -> None:
    sub = load_submission(GOOD.encode(), "solution.py")
    assert sub.defines_predict and sub.defines_circuit
    assert sub.source == GOOD


def test_notebook_code_cells_are_joined_and_magics_stripped() -> None:
    data = _notebook(
        ("markdown", "# My solution\n`predict` below"),
        ("code", "%matplotlib inline\n!pip install foo\nimport torch"),
        ("code", "%%bash\nrm -rf /"),
        (
            "code",
            "CIRCUIT = ['L1H0']\n  %time x = 1\ndef predict(tokens):\n    return tokens[:, 0]",
        ),
    )
    sub = load_submission(data, "work.ipynb")
    assert "import torch" in sub.source and "def predict" in sub.source
    assert "%" not in sub.source.replace("# ---", "") and "pip install" not in sub.source
    assert "rm -rf" not in sub.source
    assert "My solution" not in sub.source
    compile(sub.source, "x", "exec")


def test_circuit_only_submission_is_accepted() -> None:
    sub = load_submission(b"CIRCUIT = ['L0H0', 'L1MLP@-1']\n", "c.py")
    assert sub.defines_circuit and not sub.defines_predict


@pytest.mark.parametrize(
    ("data", "filename", "fragment"),
    [
        (b"x = 1\n", "s.txt", "Unsupported file type"),
        (b"", "s.py", "empty"),
        (b"def predict(t):\n    return '\xff'\n", "s.py", "not UTF-8"),
        (b"def predict(t)\n    return t\n", "s.py", "Syntax error at line 1"),
        (b"x = 1\n", "s.py", "defines none of"),
        (b'{"cells": [', "s.ipynb", "not valid JSON"),
        (b'{"nbformat": 4}', "s.ipynb", "no cells"),
        (b"a\x00b = 1\n", "s.py", "NUL"),
        (b"#" * (MAX_SUBMISSION_BYTES + 1), "s.py", "the limit is"),
    ],
)
def test_bad_uploads_get_clear_messages(data: bytes, filename: str, fragment: str) -> None:
    with pytest.raises(SubmissionError) as info:
        load_submission(data, filename)
    assert fragment in str(info.value)
    assert "Traceback" not in str(info.value)


def test_notebook_without_code_cells() -> None:
    with pytest.raises(SubmissionError, match="no code cells"):
        load_submission(_notebook(("markdown", "just words")), "n.ipynb")


def test_syntax_error_in_a_notebook_points_at_the_line() -> None:
    data = _notebook(("code", "import torch"), ("code", "def predict(tokens) return 1"))
    with pytest.raises(SubmissionError, match="Syntax error at line"):
        load_submission(data, "n.ipynb")


def test_utf8_bom_is_tolerated() -> None:
    assert load_submission(b"\xef\xbb\xbf" + GOOD.encode(), "s.py").defines_predict
