"""The verdict carries the static scan: ``compactness`` in its JSON and its report."""

from __future__ import annotations

from puzzles.verify.report import render_report
from puzzles.verify.verdict import CheckResult, Verdict


def test_compactness_travels_in_json_and_report() -> None:
    static = {
        "literal_bytes": 67,
        "max_literal_bytes": 2048,
        "largest_literal_bytes": 20,
        "largest_literal_line": 3,
        "description_bytes": 178,
        "max_description_bytes": 8192,
    }
    verdict = Verdict(passed=False, puzzle="palindromes", static=static)
    verdict.checks["circuit"] = CheckResult(
        name="circuit",
        passed=False,
        details={
            "faithfulness": 0.5,
            "n_examples": 10,
            "n_examples_circuit_agrees": 6,
            "per_example_faithfulness": {"n_faithful": 4, "n_defined": 8},
        },
    )
    data = verdict.to_json()
    assert data["compactness"] == 178 and data["static"] == static
    again = Verdict.from_json(data)
    assert again.compactness == 178 and again.static == static
    report = render_report(verdict)
    assert "compactness: 178 bytes" in report
    assert "literal data 67 of 2,048 bytes" in report
    assert "4 of 8 examples faithful" in report
    assert "model's on 6 of 10" in report
