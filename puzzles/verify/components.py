"""Submission component names (``L1H0``, ``L0MLP``, ``L1H0@-1``) <-> TransformerLens hook names.

The one place that knows the naming: the engine and the naive baseline both go through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERN = re.compile(r"^L(?P<layer>\d+)(?:H(?P<head>\d+)|(?P<mlp>MLP))(?:@(?P<pos>-?\d+))?$")


class ComponentError(ValueError):
    """A CIRCUIT entry that does not name a component of this model; the message says why."""


@dataclass(frozen=True, order=True)
class Component:
    layer: int
    head: int | None  # None: the layer's MLP
    position: int | None = None  # None: every position; else a non-negative sequence position

    @property
    def is_mlp(self) -> bool:
        return self.head is None

    @property
    def name(self) -> str:
        base = f"L{self.layer}MLP" if self.is_mlp else f"L{self.layer}H{self.head}"
        return base if self.position is None else f"{base}@{self.position}"

    @property
    def hook_name(self) -> str:
        """The TransformerLens hook whose activation this component ablates."""
        if self.is_mlp:
            return f"blocks.{self.layer}.hook_mlp_out"
        return f"blocks.{self.layer}.attn.hook_z"

    def __str__(self) -> str:
        return self.name


def parse_component(
    text: str, *, n_layers: int, n_heads: int, attn_only: bool, seq_len: int
) -> Component:
    """Parse one CIRCUIT entry; negative positions count from the end, like Python indices."""
    cleaned = text.strip().upper().replace(" ", "")
    match = _PATTERN.match(cleaned)
    if not match:
        raise ComponentError(
            f"{text!r} is not a component name; use L{{layer}}H{{head}} or L{{layer}}MLP, "
            "optionally with @position (e.g. 'L1H0', 'L0MLP', 'L1H0@-1')"
        )
    layer = int(match["layer"])
    if layer >= n_layers:
        raise ComponentError(f"{text!r}: the model has layers 0..{n_layers - 1}")
    head = None
    if match["mlp"]:
        if attn_only:
            raise ComponentError(f"{text!r}: this model is attention-only and has no MLPs")
    else:
        head = int(match["head"])
        if head >= n_heads:
            raise ComponentError(f"{text!r}: each layer has heads 0..{n_heads - 1}")
    position = None
    if match["pos"] is not None:
        pos = int(match["pos"])
        if not -seq_len <= pos < seq_len:
            raise ComponentError(
                f"{text!r}: positions run from 0 to {seq_len - 1} (or -{seq_len}..-1)"
            )
        position = pos % seq_len
    return Component(layer, head, position)


def all_components(*, n_layers: int, n_heads: int, attn_only: bool) -> list[Component]:
    """Every head and MLP of the model, at every position."""
    out = []
    for layer in range(n_layers):
        out += [Component(layer, h) for h in range(n_heads)]
        if not attn_only:
            out.append(Component(layer, None))
    return out


def parse_circuit(
    entries: list[str], *, n_layers: int, n_heads: int, attn_only: bool, seq_len: int
) -> list[Component]:
    """Parse and de-duplicate a CIRCUIT list (order kept); raises ComponentError on the first bad one."""
    seen: dict[Component, None] = {}
    for entry in entries:
        comp = parse_component(
            entry, n_layers=n_layers, n_heads=n_heads, attn_only=attn_only, seq_len=seq_len
        )
        seen.setdefault(comp, None)
    return list(seen)
