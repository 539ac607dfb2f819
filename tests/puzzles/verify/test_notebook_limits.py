"""The notebook converter refuses deep or huge JSON with a clear message, never a RecursionError."""

from __future__ import annotations

import json

import pytest

from puzzles.verify.submission import (
    MAX_NOTEBOOK_CELLS,
    SubmissionError,
    json_depth,
    load_submission,
)


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth('{"a": [1, {"b": "[[[\\"{{"}]}') == 3
    assert json_depth("[" * 2000 + "]" * 2000) == 2000


@pytest.mark.parametrize("depth", [100, 5000, 200_000])
def test_deeply_nested_notebook_is_refused(depth: int) -> None:
    text = '{"cells": [], "metadata": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(SubmissionError, match=f"nests {depth + 1} levels deep"):
        load_submission(text.encode(), "solution.ipynb")


def test_a_notebook_with_too_many_cells_is_refused() -> None:
    cell = {"cell_type": "markdown", "metadata": {}, "source": ""}
    notebook = {"cells": [cell] * (MAX_NOTEBOOK_CELLS + 1), "metadata": {}, "nbformat": 4}
    with pytest.raises(SubmissionError, match="at most"):
        load_submission(json.dumps(notebook).encode(), "solution.ipynb")


def test_a_normal_notebook_still_loads() -> None:
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "source": ["CIRCUIT = ['L0H0']\n"],
                "outputs": [],
                "execution_count": None,
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    assert load_submission(json.dumps(notebook).encode(), "s.ipynb").defines_circuit
