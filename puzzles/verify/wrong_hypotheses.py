"""Every puzzle's known wrong hypotheses, as text edits of its reference ``hypothesis.py``.

One list, applied the same way by the causal calibration (which measures them) and the hypothesis
tests (which assert they fail): a variable at the wrong site, two roles swapped, a variable the
model does not compute, a false attention claim (``WRONG``), and claims right in part, a
variable's site missing part of where the model holds it (``PARTIAL``).
"""

from __future__ import annotations

Edit = tuple[str, str]
# Wrong hypotheses per puzzle: (kind, the claim that must fail, text edits of hypothesis.py).
# Tests use the same list, so calibration measures what the tests assert.
_PAL_MIRROR = '"site": "L0H0@11..20",'
_PAL_DECISION = '"site": ["L1H0@END", "L1H1@END"],'
_FDS = {
    k: f'"site": [{s}],'
    for k, s in {
        0: '"resid_post L0 @ 5", "L0H0@9", "L0H2@9", "L0H0@10", "L0H1@10", "L0H2@10"',
        1: '"resid_post L0 @ 6", "L0H1@9", "L0H0@11", "L0H2@11"',
        2: '"resid_post L0 @ 7", "L0H1@11", "L0H1@12", "L0H2@12"',
        3: '"resid_post L0 @ 8", "L0H0@12", "L0H0@13", "L0H2@13"',
    }.items()
}
_SL_FIRST = '"site": ["L0H0@10", "L0H1@10"],'
_SL_SUCC = '"site": ["L0H0@11..19", "L0H1@11..19"],'
_SL_ANSWER = '    "answer": {"from": ["first", "successors"]},\n'
_CE_LETTERS = '"site": ["L0H0@0..23", "L0H1@0..23"],'
_CE_ANSWER = '    "answer": {"from": ["shift"]},\n'
_FU_LETTERS = '"site": ["L0H0", "L0H1", "L0H2"],'
_FU_ROLES = "chars, letters = tokens[:, 1:], letters.long()"
_FU_ANSWER = '    "answer": {"from": ["tokens", "letters"]},\n'
_CS_ANSWER = '    "answer": {"from": ["running_mean"]},\n'
WRONG: dict[str, list[tuple[str, str, list[Edit]]]] = {
    "palindromes": [
        ("wrong-site", "mirror", [(_PAL_MIRROR, '"site": "L1H0@11..20",')]),
        (
            "roles-swapped",
            "mirror",
            [(_PAL_MIRROR, "@@X@@"), (_PAL_DECISION, _PAL_MIRROR), ("@@X@@", _PAL_DECISION)],
        ),
        (
            "not-computed",  # "the first half holds a copy of the second": causal attention can't
            "mirror",
            [
                (_PAL_MIRROR, '"site": "L0H0@1..10",'),
                ("return tokens[:, 1:11].flip(-1)", "return tokens[:, 11:21].flip(-1)"),
                (
                    "return (tokens[:, 11:21] == mirror).all(-1)",
                    "return (tokens[:, 1:11] == mirror).all(-1)",
                ),
            ],
        ),
        ("false-attention", "attention", [('"key": "21-p"', '"key": "p-1"')]),
    ],
    "four_digit_sum": [
        # the leading pair read by layer 1 at the answers instead of layer 0
        ("wrong-site", "pair0", [(_FDS[0], '"site": ["L1H2@9..13"],')]),
        (
            "roles-swapped",
            "pair0",
            [(_FDS[0], "@@X@@"), (_FDS[3], _FDS[0]), ("@@X@@", _FDS[3])],
        ),
        (
            "not-computed",  # a cross-pair sum a0 + b3 the model never forms
            "pair0",
            [("    return _pair(tokens, 0)\n", "    return tokens[:, 0] + tokens[:, 8]\n")],
        ),
        ("false-attention", "attention", [('"key": "p-1"', '"key": "p-5"')]),
    ],
    "sorted_list": [
        # the list positions hold the unsorted numbers; their heads carry no answer
        ("wrong-site", "successors", [(_SL_SUCC, '"site": ["L0H0@1..9", "L0H1@1..9"],')]),
        (
            "roles-swapped",
            "successors",
            [(_SL_FIRST, "@@X@@"), (_SL_SUCC, _SL_FIRST), ("@@X@@", _SL_SUCC)],
        ),
        (
            "not-computed",  # the heads copy the number itself, not the step up to the next one
            "successors",
            [
                (
                    "return above.min(-1).values  # [n, 9]",
                    "return above.min(-1).values - current[..., 0]",
                ),
                (
                    '"answer": {"from": ["first", "successors"]},',
                    '"answer": {"from": ["first", "successors", "tokens"]},',
                ),
                (
                    "def answer(first: torch.Tensor, successors: torch.Tensor) -> torch.Tensor:\n"
                    "    return torch.cat([first, successors], -1)",
                    "def answer(first, successors, tokens):\n"
                    "    return torch.cat([first, (successors + tokens[:, 11:20]).clamp(0, 49)], -1)",
                ),
            ],
        ),
        (
            "false-attention",
            "attention",
            [
                (
                    _SL_ANSWER,
                    _SL_ANSWER
                    + '    "attention": [{"head": "L0H0", "query": "11..19", "key": "p-1"}],\n',
                )
            ],
        ),
    ],
    # "Two roles swapped" does not apply: letters -> shift is one chain on the only path from the
    # letters to the answer, so patching either carries the source's shift (writeup.md).
    "caesar_easy": [
        # the heads at half the positions: the other half still reads the base text's letters
        ("wrong-site", "letters", [(_CE_LETTERS, '"site": ["L0H0@0..11", "L0H1@0..11"],')]),
        (
            "not-computed",  # the MLP decrypts each position's letter, not one shift everywhere
            "shift",
            [
                ('"answer": {"from": ["shift"]},', '"answer": {"from": ["shift", "tokens"]},'),
                (
                    "    return out\n\n\ndef answer",
                    "    return (tokens - out) % 26  # the plaintext letter at each position\n\n\n"
                    "def answer",
                ),
                (
                    "def answer(shift: torch.Tensor) -> torch.Tensor:\n    return shift",
                    "def answer(shift, tokens):\n    return (tokens - shift) % 26",
                ),
            ],
        ),
        (
            "false-attention",
            "attention",
            [
                (
                    _CE_ANSWER,
                    _CE_ANSWER
                    + '    "attention": [{"head": "L0H0", "query": "0..23", "key": "p"}],\n',
                )
            ],
        ),
    ],
    # One variable, two roles in the vote: which letters (from layer 0) and how often each occurs
    # (from the tokens' own embeddings, which layer 1 compares them with). writeup.md.
    "first_unique": [
        # the layer-1 heads do not carry layer 0's letters: their patch moves the answer elsewhere
        ("wrong-site", "letters", [(_FU_LETTERS, '"site": ["L1H0", "L1H1", "L1H2"],')]),
        (
            "roles-swapped",
            "letters",
            [(_FU_ROLES, "chars, letters = letters.long(), tokens[:, 1:]")],
        ),
        (
            "not-computed",  # "layer 0 holds the counts too": the letters alone decide the vote
            "letters",
            [(_FU_ROLES, "chars, letters = letters.long(), letters.long()")],
        ),
        (
            "false-attention",  # the layer-0 heads avoid the query's own letter, itself included
            "attention",
            [
                (
                    _FU_ANSWER,
                    _FU_ANSWER
                    + '    "attention": [{"head": "L0H0", "query": "5..19", "key": "p"}],\n',
                )
            ],
        ),
    ],
    # One variable: "two roles swapped" does not apply. The reference makes no attention claim,
    # so a false one is measured against the default attention bar.
    "cumsum_sign": [
        # the head at the first half only: the second half's answers follow the base
        ("wrong-site", "running_mean", [('"site": "L0H0",', '"site": "L0H0@0..9",')]),
        (
            "not-computed",  # "the head carries the current value", not the prefix's mean
            "running_mean",
            [
                (
                    "    return values.cumsum(-1) / torch.arange(1, tokens.shape[1] + 1, "
                    "dtype=torch.float64)",
                    "    return values",
                ),
            ],
        ),
        (
            "false-attention",  # the head attends uniformly over the prefix, not to itself
            "attention",
            [
                (
                    _CS_ANSWER,
                    _CS_ANSWER
                    + '    "attention": [{"head": "L0H0", "query": "5..19", "key": "p"}],\n',
                )
            ],
        ),
    ],
}


# Claims right in part: a variable's site missing part of where the model holds it. Measured so
# that "holds" needs more than such a claim reaches (they should read "partly").
PARTIAL: dict[str, list[tuple[str, str, list[Edit]]]] = {
    "palindromes": [
        # README: L1H0 carries part of the decision too
        ("decision-in-one-head", "is_palindrome", [(_PAL_DECISION, '"site": "L1H1@END",')]),
    ],
    "four_digit_sum": [
        # the leading pair without its b-digit position, where layer 1 reads it
        (
            "pair-without-its-b-position",
            "pair0",
            [(_FDS[0], '"site": ["L0H0@9", "L0H2@9", "L0H0@10", "L0H1@10", "L0H2@10"],')],
        ),
    ],
    "first_unique": [
        # the letters in L0H0 alone, the head that weights the first ones most (writeup.md)
        ("letters-in-L0H0-only", "letters", [(_FU_LETTERS, '"site": ["L0H0"],')]),
    ],
}


def replace_once(source: str, old: str, new: str) -> str:
    """``source`` with ``old`` replaced by ``new``; ``old`` must occur exactly once, so an edit
    gone stale with its hypothesis fails loudly instead of testing the reference."""
    if source.count(old) != 1:
        raise ValueError(f"edit does not match exactly once: {old!r}")
    return source.replace(old, new)


def mutate(source: str, edits: list[Edit]) -> str:
    """Apply text edits in order, each with :func:`replace_once`."""
    for old, new in edits:
        source = replace_once(source, old, new)
    return source
