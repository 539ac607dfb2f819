"""Submission component names (``L1H0``, ``L0MLP``, ``L1H0@-1``, ``L1H0.OV@END``) <-> hooks.

The one place that knows the naming: the engine and the naive baseline both go through it.
A name without ``@`` is the component at every position; ``@`` restricts it to query positions:
``@5``, ``@-1`` (from the end), ``@END`` (the last position), ``@3,5,7`` (several), ``@4..END``
(a range, both ends included) or ``@ANSWERS`` (the puzzle's answer positions). A component at one position is a *unit*, the grain at which
circuits are sized, sampled for the random-circuit null and scored for minimality.

A head's output is its attention pattern (the QK path: where it reads) times its values (the OV
path: what it moves). ``L1H0.QK`` keeps only the pattern (the values are ablated), ``L1H0.OV``
only the values (the pattern is ablated): a circuit can say that a head's *reading* matters but
not where it reads, as in a head that averages every earlier position.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_PATTERN = re.compile(
    r"^L(?P<layer>\d+)(?:H(?P<head>\d+)(?:\.(?P<path>QK|OV))?|(?P<mlp>MLP))"
    r"(?:@(?P<pos>ANSWERS|{item}(?:,{item})*))?$".format(
        item=r"(?:END|-?\d+)(?:\.\.(?:END|-?\d+))?"
    )
)


class ComponentError(ValueError):
    """A CIRCUIT entry that does not name a component of this model; the message says why."""


@dataclass(frozen=True, order=True)
class Component:
    layer: int
    head: int | None  # None: the layer's MLP
    position: int | None = None  # None: every position; else a non-negative sequence position
    path: str | None = None  # a head's "QK" or "OV" path alone; None: the whole head (or an MLP)

    @property
    def is_mlp(self) -> bool:
        return self.head is None

    @property
    def name(self) -> str:
        base = f"L{self.layer}MLP" if self.is_mlp else f"L{self.layer}H{self.head}"
        if self.path is not None:
            base += f".{self.path}"
        return base if self.position is None else f"{base}@{self.position}"

    @property
    def paths(self) -> tuple[str, ...]:
        """The head paths this component keeps: both for a whole head, none for an MLP."""
        if self.is_mlp:
            return ()
        return ("QK", "OV") if self.path is None else (self.path,)

    def at(self, position: int | None) -> Component:
        return Component(self.layer, self.head, position, self.path)

    @property
    def hook_name(self) -> str:
        """The TransformerLens hook whose activation this component ablates."""
        if self.is_mlp:
            return f"blocks.{self.layer}.hook_mlp_out"
        return f"blocks.{self.layer}.attn.hook_z"

    def __str__(self) -> str:
        return self.name


def parse_entry(
    text: str,
    *,
    n_layers: int,
    n_heads: int,
    attn_only: bool,
    seq_len: int,
    answer_positions: Sequence[int] = (),
) -> list[Component]:
    """One CIRCUIT entry as components: one per listed position (or one for every position)."""
    cleaned = text.strip().upper().replace(" ", "")
    match = _PATTERN.match(cleaned)
    if not match:
        raise ComponentError(
            f"{text!r} is not a component name; use L{{layer}}H{{head}} or L{{layer}}MLP, "
            "optionally a head's path (.QK or .OV) and @positions (e.g. 'L1H0', 'L0MLP', "
            "'L1H0@-1', 'L1H0@END', 'L0MLP@3,4', 'L1H1@ANSWERS', 'L0H0.OV', 'L1H0.QK@END')"
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
    path = match["path"]
    spec = match["pos"]
    if spec is None:
        return [Component(layer, head, None, path)]
    positions = _positions(text, spec, seq_len=seq_len, answer_positions=answer_positions)
    return [Component(layer, head, pos, path) for pos in positions]


def _positions(text: str, spec: str, *, seq_len: int, answer_positions: Sequence[int]) -> list[int]:
    """An entry's ``@positions`` as distinct positions in 0..seq_len-1, in the order given."""
    if spec == "ANSWERS":
        raw = list(answer_positions)
        if not raw:
            raise ComponentError(f"{text!r}: this puzzle names no answer positions")
    else:
        raw = []
        for item in spec.split(","):
            ends = [_position(text, p, seq_len) for p in item.split("..")]
            if len(ends) == 2 and ends[1] < ends[0]:
                raise ComponentError(f"{text!r}: the range {item} is empty")
            raw += range(ends[0], ends[-1] + 1)
    return list(dict.fromkeys(p % seq_len for p in raw))


def _position(text: str, item: str, seq_len: int) -> int:
    """One position in 0..seq_len-1 (``END`` the last, negative from the end)."""
    pos = seq_len - 1 if item == "END" else int(item)
    if not -seq_len <= pos < seq_len:
        raise ComponentError(f"{text!r}: positions run from 0 to {seq_len - 1} (or -{seq_len}..-1)")
    return pos % seq_len


def parse_component(
    text: str, *, n_layers: int, n_heads: int, attn_only: bool, seq_len: int
) -> Component:
    """Parse one single-position (or all-position) entry; negative positions count from the end."""
    parts = parse_entry(
        text, n_layers=n_layers, n_heads=n_heads, attn_only=attn_only, seq_len=seq_len
    )
    if len(parts) != 1:
        raise ComponentError(f"{text!r} names several positions; expected one")
    return parts[0]


def all_components(*, n_layers: int, n_heads: int, attn_only: bool) -> list[Component]:
    """Every head and MLP of the model, at every position."""
    out = []
    for layer in range(n_layers):
        out += [Component(layer, h) for h in range(n_heads)]
        if not attn_only:
            out.append(Component(layer, None))
    return out


def units(component: Component, seq_len: int) -> list[Component]:
    """The component at each of its positions (every position when it has none)."""
    if component.position is not None:
        return [component]
    return [component.at(pos) for pos in range(seq_len)]


def path_units(component: Component, seq_len: int) -> list[Component]:
    """The component's units split into head paths: a whole head at a position is two (its QK
    and its OV path), an MLP or a single path one. The grain of a circuit that names paths."""
    return [
        Component(u.layer, u.head, u.position, path)
        for u in units(component, seq_len)
        for path in (u.paths or (None,))
    ]


def names_paths(circuit: Sequence[Component]) -> bool:
    """Whether a circuit names a head's path: it is then sized, and its null drawn, in paths."""
    return any(c.path is not None for c in circuit)


def circuit_size(circuit: Sequence[Component], seq_len: int, *, paths: bool) -> int:
    """How many units the circuit holds, in head paths (a whole head at a position is two) or
    in components at positions."""
    split = path_units if paths else units
    return sum(len(split(c, seq_len)) for c in circuit)


def all_units(
    *, n_layers: int, n_heads: int, attn_only: bool, seq_len: int, paths: bool = False
) -> list[Component]:
    """Every head and MLP at every position (with ``paths``, every head's QK and OV path
    separately): the population random circuits are drawn from."""
    components = all_components(n_layers=n_layers, n_heads=n_heads, attn_only=attn_only)
    split = path_units if paths else units
    return [unit for comp in components for unit in split(comp, seq_len)]


def parse_circuit(
    entries: list[str],
    *,
    n_layers: int,
    n_heads: int,
    attn_only: bool,
    seq_len: int,
    answer_positions: Sequence[int] = (),
) -> list[Component]:
    """Parse and de-duplicate a CIRCUIT list (order kept); raises ComponentError on the first bad one.

    A unit (or a head path) also covered by a whole-component entry is dropped (it adds nothing),
    and so is a head path covered by the whole head at its positions."""
    seen: dict[Component, None] = {}
    for entry in entries:
        for comp in parse_entry(
            entry,
            n_layers=n_layers,
            n_heads=n_heads,
            attn_only=attn_only,
            seq_len=seq_len,
            answer_positions=answer_positions,
        ):
            seen.setdefault(comp, None)

    def covered(c: Component) -> bool:
        wider = {Component(c.layer, c.head, None, None), Component(c.layer, c.head, None, c.path)}
        if c.path is not None:
            wider.add(Component(c.layer, c.head, c.position, None))
        return bool((wider - {c}) & seen.keys())

    return [c for c in seen if not covered(c)]
