"""The static scan: embedded data is refused before anything runs; comments and docstrings are free."""

from __future__ import annotations

import ast
import base64
import random

import pytest

from puzzles.catalog import list_puzzles
from puzzles.verify.baselines import task_rule_source, weight_copy_source
from puzzles.verify.static import (
    DEFAULT_MAX_LITERAL_BYTES,
    EmbeddedDataError,
    constant_bytes,
    limits_from_config,
    scan_source,
)

PUZZLES = [p for p in list_puzzles() if p.weights_path.is_file()]
IDS = [p.slug for p in PUZZLES]


@pytest.mark.parametrize("puzzle", PUZZLES, ids=IDS)
def test_weight_copy_is_refused_naming_the_limit(puzzle) -> None:
    source = weight_copy_source(puzzle)
    with pytest.raises(EmbeddedDataError) as info:
        scan_source(source, **limits_from_config(puzzle.verify))
    message = str(info.value)
    limit = limits_from_config(puzzle.verify)["max_literal_bytes"]
    assert f"at most {limit:,} (max_literal_bytes)" in message
    weights_line = next(
        i for i, line in enumerate(source.splitlines(), 1) if line.startswith("WEIGHTS")
    )
    assert (
        f"the largest ({len(base64.b64encode(puzzle.weights_path.read_bytes())):,} bytes) is on line {weights_line}"
        in message
    )


@pytest.mark.parametrize("puzzle", PUZZLES, ids=IDS)
def test_reference_and_task_rule_pass_the_scan(puzzle) -> None:
    """The bound refuses data, not solutions: the reference and even the task-rule cheat
    (refused later, by the checks) are short code."""
    limits = limits_from_config(puzzle.verify)
    reference = scan_source(puzzle.solution_path.read_text(), **limits)
    assert reference.literal_bytes <= limits["max_literal_bytes"]
    assert 0 < reference.description_bytes < 2000
    rule = scan_source(task_rule_source(puzzle), **limits)
    assert rule.literal_bytes <= limits["max_literal_bytes"]


def _refused(source: str, limit: int = 100) -> str:
    with pytest.raises(EmbeddedDataError) as info:
        scan_source(source, max_literal_bytes=limit)
    return str(info.value)


@pytest.mark.parametrize(
    "source",
    [
        "A = 'x' * 3\n" + "".join(f"V{i} = {i + 1000}\n" for i in range(60)),  # many small ones
        "T = [" + ", ".join("0.5" for _ in range(20)) + "]\n",  # a float table
        "B = bytes([" + ", ".join(str(i) for i in range(120)) + "])\n",
        f"N = {2**900}\n",  # numbers packed in one long int literal
        "S = f'{1}" + "q" * 120 + "'\n",  # the constant parts of an f-string
        "S = 'a' * 2 + " + " + ".join(f"'{c * 10}'" for c in "abcdefghijkl") + "\n",
        "D = {" + ", ".join(f"{i}: ({i}, {i + 1}, -{i})" for i in range(30)) + "}\n",
        "def f(x: '" + "y" * 120 + "'): return x\n",  # an annotation is a string too
    ],
    ids=[
        "many-small",
        "float-table",
        "bytes-list",
        "long-int",
        "f-string",
        "concatenation",
        "nested-dict",
        "annotation",
    ],
)
def test_evasions_count(source: str) -> None:
    assert "max_literal_bytes" in _refused(source)


def test_docstrings_and_comments_are_free_because_they_never_run() -> None:
    payload = base64.b64encode(bytes(range(256)) * 40).decode()
    source = (
        f'"""{payload}"""\n'
        "import math  # " + payload + "\n\n"
        "def predict(tokens):\n"
        f'    """{payload}"""\n'
        "    'a bare string is a comment too'\n"
        "    return tokens[:, :1] * 0\n\n"
        "def empty():\n"
        f'    """{payload}"""\n'
        "try:\n    pass\nfinally:\n    'only a string'\n"
    )
    report = scan_source(source)
    assert report.literal_bytes == 1 + 1 + 0  # the two 1s and the 0: nothing else
    assert payload not in report.canonical_source
    assert "bare string" not in report.canonical_source
    namespace: dict = {}
    exec(compile(report.canonical_source, "<canonical>", "exec"), namespace)
    assert namespace["predict"].__doc__ is None
    assert namespace["empty"]() is None  # an emptied body becomes `pass`


def test_data_in_names_is_bounded_by_the_description_length() -> None:
    data = random.Random(0).randbytes(20_000)  # incompressible, like float weights
    chunks = base64.b32encode(data).decode().rstrip("=")
    names = [f"_{chunks[i : i + 60]}" for i in range(0, len(chunks), 60)]
    source = "".join(f"def {name}(): pass\n" for name in names)
    with pytest.raises(EmbeddedDataError) as info:
        scan_source(source)
    assert "max_description_bytes" in str(info.value)


def test_constant_bytes() -> None:
    assert constant_bytes("héllo") == 6
    assert constant_bytes(b"abc") == 3
    assert constant_bytes(0) == 1 and constant_bytes(255) == 1 and constant_bytes(256) == 2
    assert constant_bytes(-(2**64)) == 9
    assert constant_bytes(1.5) == 8 and constant_bytes(1j) == 16
    assert constant_bytes(None) == constant_bytes(True) == 0


def test_default_limit_and_canonical_code_parses() -> None:
    report = scan_source("x = 1\n")
    assert report.max_literal_bytes == DEFAULT_MAX_LITERAL_BYTES == 2048
    ast.parse(report.canonical_source)
    assert report.largest_literal_line == 1


def test_verify_refuses_the_weight_copy_before_any_sandbox(monkeypatch) -> None:
    """End to end: an input error naming the limit, and no sandbox was ever started."""
    from puzzles.verify import engine, verify_submission

    def no_sandbox(*args, **kwargs):
        raise AssertionError("a sandbox was started for a refused submission")

    monkeypatch.setattr(engine, "Sandbox", no_sandbox)
    puzzle = next(p for p in PUZZLES if p.slug == "cumsum_sign")
    verdict = verify_submission(weight_copy_source(puzzle).encode(), "copy.py", puzzle)
    assert not verdict.passed
    assert verdict.error_kind == "input"
    assert "(max_literal_bytes)" in verdict.error
