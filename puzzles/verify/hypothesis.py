"""Submission format v2: a mechanistic hypothesis, read from the upload without running it.

A v2 submission adds a literal ``HYPOTHESIS`` dict (a small causal model) and one plain function
per variable plus ``answer``::

    HYPOTHESIS = {
        "variables": {
            "mirror": {"from": ["tokens"], "site": ["L0H0@11..20", "L0H1@11..20"]},
            "is_palindrome": {"from": ["tokens", "mirror"], "site": "L1H1@END"},
        },
        "answer": {"from": ["is_palindrome"]},
        "attention": [{"head": "L0H0", "query": "11..20", "key": "21-p"}],
    }

The trusted process reads the dict with :func:`ast.literal_eval` (never ``exec``) and checks every
site against the model here; the functions run only in the sandbox (``_runner.py``). Sites are
named components at positions (``L0H1@END``, ``L1MLP@3,5``) or the residual stream
(``resid_post L0 @ 11..20``), optionally with a short literal ``direction``: no learned maps, since
with arbitrary alignment maps any network matches any algorithm.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from puzzles.verify.hypothesis_sites import (
    MAX_DIRECTION,
    RESID_KINDS,
    HypothesisError,
    Site,
    format_positions,
    parse_positions,
    parse_site,
)

__all__ = [
    "MAX_ATTENTION_CLAIMS",
    "MAX_VARIABLES",
    "RESID_KINDS",
    "AttentionClaim",
    "Hypothesis",
    "HypothesisError",
    "Site",
    "Variable",
    "find_declaration",
    "parse_hypothesis",
    "parse_positions",
    "parse_site",
]

MAX_VARIABLES = 16
MAX_ATTENTION_CLAIMS = 16
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Variable:
    name: str
    inputs: tuple[str, ...]
    """``tokens`` and/or earlier variables, in the order the function takes them."""
    sites: tuple[Site, ...]
    function: str
    means: str = ""


@dataclass(frozen=True)
class AttentionClaim:
    head: int
    layer: int
    queries: tuple[int, ...]
    keys: tuple[int, ...]
    """The claimed key position for each query position (same order)."""
    text: str


@dataclass
class Hypothesis:
    variables: list[Variable]
    """In an order where every variable comes after the variables it reads."""
    answer_inputs: tuple[str, ...]
    answer_function: str = "answer"
    attention: list[AttentionClaim] = field(default_factory=list)

    def to_job(self) -> dict[str, Any]:
        """What the sandbox needs to run the solver's algorithm (names and wiring only)."""
        return {
            "variables": [
                {"name": v.name, "inputs": list(v.inputs), "function": v.function}
                for v in self.variables
            ],
            "answer": {"inputs": list(self.answer_inputs), "function": self.answer_function},
        }


def _eval_key(expr: str, p: int, where: str) -> int:
    """A key-position formula in ``p`` (``"21-p"``, ``"p-1"``, ``"0"``): + - * // % on ints only."""
    try:
        tree = ast.parse(str(expr).strip(), mode="eval")
    except SyntaxError:
        raise HypothesisError(f"{where}: key {expr!r} is not a formula in p") from None
    ops = {
        ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b,
        ast.FloorDiv: lambda a, b: a // b,
        ast.Mod: lambda a, b: a % b,
    }

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Name) and node.id == "p":
            return p
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            right = ev(node.right)
            if isinstance(node.op, ast.FloorDiv | ast.Mod) and right == 0:
                raise HypothesisError(f"{where}: key {expr!r} divides by zero")
            return ops[type(node.op)](ev(node.left), right)
        raise HypothesisError(f"{where}: key {expr!r} may use p, integers and + - * // % only")

    if len(str(expr)) > 60:
        raise HypothesisError(f"{where}: key formula too long")
    return ev(tree)


def find_declaration(source: str) -> Any:
    """The literal value of the module-level ``HYPOTHESIS = {...}``, or None when there is none."""
    tree = ast.parse(source)
    node: ast.expr | None = None
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "HYPOTHESIS" for t in targets):
            node = value  # the last assignment wins, as it would when run
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise HypothesisError(
            f"HYPOTHESIS (line {node.lineno}) must be a plain literal (dicts, lists, strings, "
            "numbers) so it can be read without running your code"
        ) from None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise HypothesisError(f"{where} must be a list of names")
    return tuple(value)


def parse_hypothesis(
    declaration: Any,
    *,
    n_layers: int,
    n_heads: int,
    attn_only: bool,
    seq_len: int,
    d_model: int,
    d_head: int,
) -> Hypothesis:
    """Validate a ``HYPOTHESIS`` literal against the model; raises HypothesisError."""
    shape = dict(
        n_layers=n_layers,
        n_heads=n_heads,
        attn_only=attn_only,
        seq_len=seq_len,
        d_model=d_model,
        d_head=d_head,
    )
    raw_vars = _variable_specs(declaration)
    specs = {name: _parse_variable(name, spec, shape) for name, spec in raw_vars.items()}
    answer_inputs, answer_function = _parse_answer(declaration.get("answer"), specs)
    for owner, inputs in [(v.name, v.inputs) for v in specs.values()] + [("answer", answer_inputs)]:
        for item in inputs:
            if item != "tokens" and item not in specs:
                raise HypothesisError(f"{owner} reads {item!r}, which is not a declared variable")
    _refuse_trivial_sites(specs, n_layers=n_layers, seq_len=seq_len)
    ordered = _topological(specs)
    claims = _attention(declaration.get("attention", []), **shape)
    return Hypothesis(ordered, answer_inputs, answer_function, claims)


def _variable_specs(declaration: Any) -> dict[Any, Any]:
    """The declaration's top level checked; its ``variables`` dict."""
    if not isinstance(declaration, dict):
        raise HypothesisError("HYPOTHESIS must be a dict with 'variables' and 'answer'")
    unknown = set(declaration) - {"variables", "answer", "attention"}
    if unknown:
        raise HypothesisError(
            f"HYPOTHESIS has unknown keys: {', '.join(sorted(map(str, unknown)))}"
        )
    raw_vars = declaration.get("variables")
    if not isinstance(raw_vars, dict) or not raw_vars:
        raise HypothesisError("HYPOTHESIS['variables'] must be a non-empty dict: name -> spec")
    if len(raw_vars) > MAX_VARIABLES:
        raise HypothesisError(f"at most {MAX_VARIABLES} variables are allowed")
    return raw_vars


def _parse_variable(name: Any, spec: Any, shape: dict[str, Any]) -> Variable:
    where = f"variable {name!r}"
    if not isinstance(name, str) or not _NAME.match(name) or name in ("tokens", "answer"):
        raise HypothesisError(f"{where}: use a Python identifier (not 'tokens' or 'answer')")
    if not isinstance(spec, dict):
        raise HypothesisError(f"{where}: the spec must be a dict with 'from' and 'site'")
    extra = set(spec) - {"from", "site", "direction", "function", "means"}
    if extra:
        raise HypothesisError(f"{where}: unknown keys {', '.join(sorted(map(str, extra)))}")
    inputs = _strings(spec.get("from", ["tokens"]), f"{where}: 'from'")
    if not inputs:
        raise HypothesisError(f"{where}: 'from' is empty; a variable reads tokens or variables")
    sites = _variable_sites(spec, where, shape)
    function = spec.get("function", name)
    if not isinstance(function, str) or not _NAME.match(function):
        raise HypothesisError(f"{where}: 'function' must name a function of your file")
    means = spec.get("means", "")
    return Variable(name, inputs, sites, function, str(means)[:200])


def _variable_sites(spec: dict[Any, Any], where: str, shape: dict[str, Any]) -> tuple[Site, ...]:
    if "site" not in spec:
        raise HypothesisError(f"{where}: 'site' is missing: where in the model is it computed?")
    site_texts = _strings(spec["site"], f"{where}: 'site'")
    if not site_texts or len(site_texts) > 16:
        raise HypothesisError(f"{where}: give 1 to 16 sites")
    direction = spec.get("direction")
    if direction is not None and len(site_texts) != 1:
        raise HypothesisError(f"{where}: a direction applies to exactly one site")
    if direction is not None and len(direction) > MAX_DIRECTION:
        raise HypothesisError(f"{where}: a direction has at most {MAX_DIRECTION} numbers")
    return tuple(parse_site(t, direction=direction, **shape) for t in site_texts)


def _parse_answer(raw_answer: Any, specs: dict[str, Variable]) -> tuple[tuple[str, ...], str]:
    """The answer's inputs and function name."""
    if isinstance(raw_answer, list | tuple | str):
        raw_answer = {"from": raw_answer}
    if not isinstance(raw_answer, dict):
        raise HypothesisError("HYPOTHESIS['answer'] must be {'from': [variables]}")
    answer_inputs = _strings(raw_answer.get("from", []), "answer: 'from'")
    if not any(name in specs for name in answer_inputs):
        raise HypothesisError("the answer must be computed from at least one declared variable")
    answer_function = raw_answer.get("function", "answer")
    if not isinstance(answer_function, str) or not _NAME.match(answer_function):
        raise HypothesisError("answer: 'function' must name a function of your file")
    return answer_inputs, answer_function


def _refuse_trivial_sites(specs: dict[str, Variable], *, n_layers: int, seq_len: int) -> None:
    """Refuse sites where any algorithm's variables would 'hold': the input, the output, or the
    whole residual stream at one point (a complete cut of the model).

    Patching the input embedding is running the model on the source's tokens, and patching the
    last residual stream is setting its output: a task rule declaring ``tokens_copy`` there gets
    an IIA equal to its agreement with the model. Likewise the residual stream at every position
    (position 0, the same start token in every input, aside) carries everything downstream of it.
    """
    whole: dict[int, set[int]] = {}
    final = 2 * n_layers
    for var in specs.values():
        for site in var.sites:
            where = f"variable {var.name!r}, site {site.name!r}"
            if site.kind == "resid_pre" and site.layer == 0:
                raise HypothesisError(
                    f"{where}: the residual stream before layer 0 is the input embedding, which "
                    "the model computes nothing in; place the variable where a head, an MLP or a "
                    "later residual stream computes it"
                )
            if site.kind in RESID_KINDS and site.stage == final:
                raise HypothesisError(
                    f"{where}: the residual stream after the last layer is the model's output; "
                    "place the variable where a component computes it"
                )
            if site.kind in RESID_KINDS and site.direction is None:
                whole.setdefault(site.stage, set()).update(site.positions)
    for stage, positions in whole.items():
        if set(range(1, seq_len)) <= positions:
            raise HypothesisError(
                f"the residual stream at stage {stage} (after {stage // 2} layers"
                f"{' and an attention sublayer' if stage % 2 else ''}) is claimed at every "
                "position: that is the model's whole state there, where any algorithm's variables "
                "would hold; claim fewer positions, components, or a direction"
            )


def _topological(specs: dict[str, Variable]) -> list[Variable]:
    done: dict[str, Variable] = {}
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            raise HypothesisError(f"variable {name!r} depends on itself (a cycle in 'from')")
        visiting.add(name)
        for item in specs[name].inputs:
            if item != "tokens":
                visit(item)
        visiting.discard(name)
        done[name] = specs[name]

    for name in specs:
        visit(name)
    return list(done.values())


def _attention(raw: Any, **shape: Any) -> list[AttentionClaim]:
    if not isinstance(raw, list | tuple):
        raise HypothesisError("HYPOTHESIS['attention'] must be a list of claims")
    if len(raw) > MAX_ATTENTION_CLAIMS:
        raise HypothesisError(f"at most {MAX_ATTENTION_CLAIMS} attention claims are allowed")
    claims = []
    for i, claim in enumerate(raw):
        where = f"attention claim {i + 1}"
        if not isinstance(claim, dict) or not {"head", "query", "key"} <= set(claim):
            raise HypothesisError(
                f"{where}: use {{'head': 'L0H0', 'query': '11..20', 'key': '21-p'}}"
            )
        site = parse_site(f"{claim['head']}@{claim['query']}", **shape)
        if site.kind != "head":
            raise HypothesisError(f"{where}: {claim['head']!r} is not an attention head")
        keys = []
        for p in site.positions:
            key = _eval_key(claim["key"], p, where)
            if not 0 <= key <= p:
                raise HypothesisError(
                    f"{where}: at query position {p} the key {claim['key']} = {key} is not in "
                    f"0..{p} (attention is causal)"
                )
            keys.append(key)
        text = f"{site.name.split('@')[0]} at p in {format_positions(site.positions)} attends to {claim['key']}"
        claims.append(AttentionClaim(site.head or 0, site.layer, site.positions, tuple(keys), text))
    return claims
