"""Format v2 declarations: read without running them, checked against the model's shape."""

from __future__ import annotations

import pytest

from puzzles.verify.hypothesis import (
    HypothesisError,
    find_declaration,
    parse_hypothesis,
    parse_positions,
    parse_site,
)

SHAPE = dict(n_layers=2, n_heads=2, attn_only=True, seq_len=22, d_model=28, d_head=14)


def _hyp(**overrides):
    decl = {
        "variables": {
            "b": {"from": ["tokens", "a"], "site": "L1H1@END"},
            "a": {"from": ["tokens"], "site": ["L0H0@11..20", "resid_post L0 @ 3,5"]},
        },
        "answer": {"from": ["b"]},
        "attention": [{"head": "L0H0", "query": "11..20", "key": "21-p"}],
    }
    decl.update(overrides)
    return decl


def test_parses_sites_positions_order_and_attention() -> None:
    hyp = parse_hypothesis(_hyp(), **SHAPE)
    assert [v.name for v in hyp.variables] == ["a", "b"]  # dependencies first
    a = hyp.variables[0]
    assert a.sites[0].kind == "head" and a.sites[0].positions == tuple(range(11, 21))
    assert a.sites[1].kind == "resid_post" and a.sites[1].positions == (3, 5)
    assert a.sites[1].hook_name == "blocks.0.hook_resid_post"
    assert hyp.variables[1].sites[0].positions == (21,)
    claim = hyp.attention[0]
    assert claim.queries == tuple(range(11, 21)) and claim.keys == tuple(range(10, 0, -1))
    assert parse_positions("START,-1", seq_len=22, where="x") == (0, 21)


def test_direction_is_normalised_and_sized() -> None:
    site = parse_site("resid_pre L1 @ END", direction=[3, 4] + [0] * 26, **SHAPE)
    assert site.direction[:2] == (0.6, 0.8)
    with pytest.raises(HypothesisError, match="needs 14 numbers"):
        parse_site("L0H1@END", direction=[1.0] * 28, **SHAPE)


@pytest.mark.parametrize(
    ("decl", "message"),
    [
        (_hyp(answer={"from": ["b", "nope"]}), "not a declared variable"),
        (_hyp(answer={"from": ["tokens"]}), "at least one declared variable"),
        (
            _hyp(variables={"a": {"from": ["a"], "site": "L0H0"}}, answer=["a"], attention=[]),
            "depends on itself",
        ),
        (_hyp(variables={"a": {"from": ["tokens"], "site": "L2H0@1"}}), "layers 0..1"),
        (_hyp(variables={"a": {"from": ["tokens"], "site": "L0MLP@1"}}), "attention-only"),
        (_hyp(variables={"a": {"from": ["tokens"], "site": "L0H0@40"}}), "outside 0..21"),
        (_hyp(variables={"a": {"from": ["tokens"]}}), "'site' is missing"),
        (_hyp(attention=[{"head": "L0H0", "query": "3", "key": "p+1"}]), "attention is causal"),
        (_hyp(attention=[{"head": "L0H0", "query": "3", "key": "__import__('os')"}]), "may use p"),
        (_hyp(extra=1), "unknown keys"),
        # sites where any algorithm would hold: the input, the output, the whole state
        (
            _hyp(variables={"a": {"from": ["tokens"], "site": "resid_pre L0 @ *"}}, answer=["a"]),
            "input embed",
        ),
        (
            _hyp(variables={"a": {"from": ["tokens"], "site": "resid_pre L0 @ 3"}}, answer=["a"]),
            "input embed",
        ),
        (
            _hyp(
                variables={"a": {"from": ["tokens"], "site": "resid_post L1 @ END"}}, answer=["a"]
            ),
            "output",
        ),
        (
            _hyp(
                variables={"a": {"from": ["tokens"], "site": "resid_post L0 @ 1..21"}}, answer=["a"]
            ),
            "whole",
        ),
        (
            _hyp(
                variables={
                    "a": {"from": ["tokens"], "site": "resid_pre L1 @ 1..10"},
                    "b": {"from": ["a"], "site": "resid_post L0 @ 11..21"},
                },
                answer=["b"],
            ),
            "whole state",
        ),
    ],
)
def test_bad_declarations_say_why(decl, message) -> None:
    with pytest.raises(HypothesisError, match=message):
        parse_hypothesis(decl, **SHAPE)


def test_declaration_is_read_without_running_code() -> None:
    assert find_declaration("x = 1\n") is None
    assert find_declaration("HYPOTHESIS = {'variables': {}}\n") == {"variables": {}}
    with pytest.raises(HypothesisError, match="plain literal"):
        find_declaration("HYPOTHESIS = dict(open('/etc/passwd'))\n")


@pytest.mark.parametrize(
    ("functions", "message"),
    [
        ("def answer(a):\n    return a[:, :1]\n", "needs a function `a`"),
        ("def a(t):\n    raise KeyError('x')\ndef answer(a):\n    return a\n", "KeyError"),
        ("def a(t):\n    return t[:3]\ndef answer(a):\n    return a\n", "one row per input"),
        ("def a(t):\n    return t[:, :1]\ndef answer(a):\n    return a + 5\n", "class ids"),
    ],
    ids=["missing", "raises", "rows", "classes"],
)
def test_hypothesis_function_errors_are_clear(functions, message) -> None:
    import torch

    from puzzles.verify.causal_check import build_job
    from puzzles.verify.causal_section import trusted_counterfactuals

    decl = {"variables": {"a": {"from": ["tokens"], "site": "L0H0@END"}}, "answer": ["a"]}
    hyp = parse_hypothesis(decl, **SHAPE)
    pool = torch.randint(0, 2, (40, 22))
    job = build_job(hyp, pool, seed=1, k=1, n_classes=2, config={})
    source = f"HYPOTHESIS = {decl!r}\n{functions}"
    tensors, error = trusted_counterfactuals(source, job)
    assert tensors is None and message in error
