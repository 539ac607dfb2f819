"""Every reference solution passes the verification engine; wrong answers and circuits do not."""

from __future__ import annotations

import pytest

from puzzles.catalog import get_puzzle, list_puzzles

verify = pytest.importorskip("puzzles.verify")

SLUGS = [p.slug for p in list_puzzles()]


@pytest.mark.parametrize("slug", SLUGS)
def test_reference_solution_passes_the_engine(slug: str) -> None:
    puzzle = get_puzzle(slug)
    verdict = verify.verify_submission(
        puzzle.solution_path.read_bytes(), "solution.py", puzzle, sandbox=False
    )
    assert verdict.error is None, verdict.error
    assert verdict.passed, verdict.report_md


def test_a_wrong_algorithm_and_a_wrong_circuit_fail() -> None:
    puzzle = get_puzzle("palindromes")
    always_yes = b"import torch\nCIRCUIT = ['L1H0']\n\ndef predict(tokens):\n    return torch.ones(tokens.shape[0], dtype=torch.long)\n"
    verdict = verify.verify_submission(always_yes, "wrong.py", puzzle, sandbox=False)
    assert not verdict.passed
    assert not verdict.checks["replication"].passed
    assert not verdict.checks["circuit"].passed
