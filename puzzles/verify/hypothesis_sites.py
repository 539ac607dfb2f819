"""Sites of a hypothesis: where in the model a variable is claimed to live.

Named components at positions (``L0H1@END``, ``L1MLP@3,5``) or the residual stream
(``resid_post L0 @ 11..20``), optionally with a short literal ``direction``, each checked against
the model's shape before anything runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_DIRECTION = 512
RESID_KINDS = ("resid_pre", "resid_mid", "resid_post")

_COMPONENT = re.compile(r"^L(?P<layer>\d+)(?:H(?P<head>\d+)|(?P<mlp>MLP))$")
_RESID = re.compile(r"^(?P<kind>resid_pre|resid_mid|resid_post)\s*\.?\s*L(?P<layer>\d+)$")


class HypothesisError(ValueError):
    """The HYPOTHESIS declaration is malformed; the message says what and where."""


@dataclass(frozen=True)
class Site:
    """One place in the model: a head's ``hook_z``, an MLP's output or the residual stream."""

    kind: str  # "head", "mlp", "resid_pre", "resid_mid", "resid_post"
    layer: int
    head: int | None
    positions: tuple[int, ...]
    direction: tuple[float, ...] | None = None

    @property
    def stage(self) -> int:
        """Index of the residual-stream state this site's patch first changes (2*layer + sublayer)."""
        return {
            "resid_pre": 2 * self.layer,
            "head": 2 * self.layer,
            "resid_mid": 2 * self.layer + 1,
            "mlp": 2 * self.layer + 1,
            "resid_post": 2 * self.layer + 2,
        }[self.kind]

    @property
    def hook_name(self) -> str:
        """The TransformerLens hook holding this site's activation."""
        if self.kind == "head":
            return f"blocks.{self.layer}.attn.hook_z"
        if self.kind == "mlp":
            return f"blocks.{self.layer}.hook_mlp_out"
        return f"blocks.{self.layer}.hook_{self.kind}"

    @property
    def name(self) -> str:
        pos = format_positions(self.positions)
        if self.kind == "head":
            base = f"L{self.layer}H{self.head}"
        elif self.kind == "mlp":
            base = f"L{self.layer}MLP"
        else:
            base = f"{self.kind} L{self.layer} "
        return f"{base}@{pos}" + (" (direction)" if self.direction else "")


def format_positions(positions: tuple[int, ...]) -> str:
    """Sorted positions as runs: ``(0, 1, 2, 5)`` -> ``"0..2,5"``."""
    runs: list[tuple[int, int]] = []
    for p in positions:
        if runs and p == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], p)
        else:
            runs.append((p, p))
    return ",".join(str(lo) if lo == hi else f"{lo}..{hi}" for lo, hi in runs)


def parse_positions(text: str, *, seq_len: int, where: str) -> tuple[int, ...]:
    """``"11..20"``, ``"END"``, ``"0,3,-1"``, ``"*"`` (every position) -> sorted positions."""
    named = {"START": 0, "FIRST": 0, "END": seq_len - 1, "LAST": seq_len - 1}
    text = str(text).strip().upper()
    if text in ("", "*", "ALL"):
        return tuple(range(seq_len))
    out: set[int] = set()

    def one(item: str) -> int:
        item = item.strip()
        if item in named:
            return named[item]
        try:
            value = int(item)
        except ValueError:
            raise HypothesisError(
                f"{where}: {item!r} is not a position (use numbers, a..b, START or END)"
            ) from None
        if not -seq_len <= value < seq_len:
            raise HypothesisError(f"{where}: position {value} is outside 0..{seq_len - 1}")
        return value % seq_len

    for item in text.split(","):
        if ".." in item:
            lo, hi = (one(part) for part in item.split("..", 1))
            if hi < lo:
                raise HypothesisError(f"{where}: the range {item.strip()} is empty")
            out.update(range(lo, hi + 1))
        else:
            out.add(one(item))
    return tuple(sorted(out))


def parse_site(
    text: str,
    *,
    n_layers: int,
    n_heads: int,
    attn_only: bool,
    seq_len: int,
    d_model: int,
    d_head: int,
    direction: Any = None,
) -> Site:
    """One site string, checked against the model's shape."""
    if not isinstance(text, str) or len(text) > 80:
        raise HypothesisError(f"a site must be a short string like 'L0H1@END', not {text!r}")
    where = f"site {text!r}"
    name, _, positions = text.partition("@")
    kind, layer, head = _parse_component(name.strip(), where, n_heads=n_heads, attn_only=attn_only)
    if layer >= n_layers:
        raise HypothesisError(f"{where}: the model has layers 0..{n_layers - 1}")
    vector = None
    if direction is not None:
        vector = _unit_direction(direction, where, d_head if kind == "head" else d_model)
    return Site(
        kind=kind,
        layer=layer,
        head=head,
        positions=parse_positions(positions, seq_len=seq_len, where=where),
        direction=vector,
    )


def _parse_component(
    name: str, where: str, *, n_heads: int, attn_only: bool
) -> tuple[str, int, int | None]:
    """(kind, layer, head) of a site's name: a head, an MLP or a residual stream."""
    comp = _COMPONENT.match(name.upper().replace(" ", ""))
    resid = _RESID.match(name.strip())
    if comp:
        layer = int(comp["layer"])
        head = None if comp["mlp"] else int(comp["head"])
        kind = "mlp" if head is None else "head"
        if kind == "mlp" and attn_only:
            raise HypothesisError(f"{where}: this model is attention-only and has no MLPs")
        if head is not None and head >= n_heads:
            raise HypothesisError(f"{where}: each layer has heads 0..{n_heads - 1}")
        return kind, layer, head
    if resid:
        kind, layer = resid["kind"], int(resid["layer"])
        if kind == "resid_mid" and attn_only:
            kind = "resid_post"  # no MLP: the stream after attention is the layer's output
        return kind, layer, None
    raise HypothesisError(
        f"{where} is not a site; use a component at positions ('L0H1@END', 'L1MLP@3..5') "
        "or the residual stream ('resid_post L0 @ 11..20')"
    )


def _unit_direction(direction: Any, where: str, width: int) -> tuple[float, ...]:
    """A literal direction checked for its width and normalised to unit length."""
    if not isinstance(direction, list | tuple) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in direction
    ):
        raise HypothesisError(f"{where}: direction must be a list of numbers")
    if len(direction) != width:
        raise HypothesisError(f"{where}: direction needs {width} numbers, got {len(direction)}")
    norm = sum(float(x) ** 2 for x in direction) ** 0.5
    if not norm > 0 or norm != norm:
        raise HypothesisError(f"{where}: direction must be a non-zero vector")
    return tuple(float(x) / norm for x in direction)
