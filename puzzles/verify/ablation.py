"""Ablation engine: logits of the puzzle model with chosen components mean- or resample-ablated.

A component is ablated by replacing its activation (a head's ``hook_z``, an MLP's ``hook_mlp_out``)
at chosen positions by its mean over the evaluation batch (``mean``) or by its value on another,
randomly paired example (``resample``). The clean model runs once with a cache; a variant then
starts from the cached residual stream just before its first ablated sublayer, reuses the cached
activations of that sublayer (its input did not change), skips sublayers that are ablated at every
position (their output is the ablation value, no compute), and recomputes only the rest. Ablations
confined to the last sublayer therefore cost nothing but the unembedding: the residual stream is
linear in the sublayer outputs. Stacking variants into one large batch is slower on CPU than this
loop (measured 0.3x), so variants run one after another.

A head's two paths ablate apart: keeping only its QK path combines the clean attention pattern
with the values' ablation values; keeping only its OV path combines the pattern's ablation value
with the clean values; ablating both replaces the head's output as before.

``naive_logits`` is the obvious way (one full ``run_with_hooks`` per variant); the benchmark and
the tests check that both give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from puzzles.verify.components import Component

_Module = Callable[[torch.Tensor], torch.Tensor]
_Pos = torch.Tensor | slice
"""Positions to compute at: the answer positions (last layer) or every position."""

ABLATIONS = ("mean", "resample")


@dataclass
class Mask:
    """Which activations stay clean: each head's QK and OV path ``[layers, seq, heads]`` (at query
    positions), MLPs ``[layers, seq]``. A head is whole where both of its paths are kept."""

    qk: torch.Tensor
    ov: torch.Tensor
    mlps: torch.Tensor

    @property
    def heads(self) -> torch.Tensor:
        """Where a head is kept whole."""
        return self.qk & self.ov

    @property
    def key(self) -> tuple[bytes, ...]:
        """The mask as bytes: equal masks, equal keys."""
        return tuple(t.cpu().numpy().tobytes() for t in (self.qk, self.ov, self.mlps))

    def clone(self) -> Mask:
        return Mask(qk=self.qk.clone(), ov=self.ov.clone(), mlps=self.mlps.clone())


def _native(model):
    return getattr(model, "original_model", model)


def _raw(module):
    """The plain torch module under a TransformerBridge wrapper (no hook machinery, same weights)."""
    while isinstance(getattr(module, "_original_component", None), torch.nn.Module):
        module = module._original_component
    return module


class _Layer:
    """Plain-torch handles on one block's weights (the bridge wrappers cost ~2x on CPU)."""

    def __init__(self, block) -> None:
        block = _raw(block)
        self.ln1 = _raw(block.ln1)
        self.attn = _raw(block.attn)
        self.q, self.k, self.v, self.o = (_raw(getattr(self.attn, n)) for n in "qkvo")
        self.ln2: _Module | None = _raw(block.ln2) if hasattr(block, "ln2") else None
        self.mlp: _Module | None = None
        if hasattr(block, "mlp"):
            self.mlp = self._mlp(_raw(block.mlp))

    @staticmethod
    def _mlp(mlp):
        act = getattr(mlp, "act", None)
        if act is not None and hasattr(mlp, "fc_in"):
            fc_in, fc_out = _raw(mlp.fc_in), _raw(mlp.fc_out)
            ln = _raw(mlp.ln) if getattr(mlp, "ln", None) is not None else None
            if ln is None:
                return lambda x: fc_out(act(fc_in(x)))
            return lambda x: fc_out(ln(act(fc_in(x))))
        if act is not None and hasattr(mlp, "gate"):
            gate, up, down = _raw(mlp.gate), _raw(getattr(mlp, "in")), _raw(mlp.out)
            return lambda x: down(act(gate(x)) * up(x))
        return mlp  # anything else: the module itself


def _mix(pattern: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A head's output ``z`` ``[batch, queries, heads, d_head]`` from its pattern and values."""
    return torch.matmul(pattern, v).transpose(1, 2)


def _softcap(logits: torch.Tensor, cap: float) -> torch.Tensor:
    return cap * torch.tanh(logits / cap) if cap and cap > 0 else logits


class AblationEngine:
    """The clean run of ``tokens`` with its cache, and fast ablated variants of it."""

    def __init__(
        self,
        model,
        tokens: torch.Tensor,
        *,
        answer_positions: Sequence[int],
        ablation: str = "mean",
        seed: int = 0,
    ) -> None:
        if ablation not in ABLATIONS:
            raise ValueError(f"ablation must be one of {ABLATIONS}, not {ablation!r}")
        self.native = _native(model)
        self.cfg = self.native.cfg
        self._layers = [_Layer(block) for block in self.native.layers]
        self._tok_embed = _raw(self.native.tok_embed)
        self._pos = _raw(self.native.pos) if self.native.pos is not None else None
        self._ln_out, self._head = _raw(self.native.ln_out), _raw(self.native.head)
        self.n_layers = self.cfg.n_layers
        self.n_heads = self.cfg.n_heads
        self.attn_only = bool(self.cfg.attn_only)
        device = next(self.native.parameters()).device
        self.device = device
        self.tokens = tokens.to(device)
        self.batch, self.seq = self.tokens.shape
        self.answer_positions = torch.as_tensor(list(answer_positions), device=device)
        self.ablation = ablation
        self._seed = seed
        self._ablated_ready = False
        with torch.no_grad():
            self._clean_run()

    # -- clean run ---------------------------------------------------------------------------
    def _embed(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, seq = tokens.shape
        position_ids = torch.arange(seq, device=tokens.device).unsqueeze(0).expand(batch, -1)
        hidden = self._tok_embed(tokens)
        if self._pos is not None:
            hidden = hidden + self._pos(position_ids)
        return hidden, position_ids

    def _attn_z(
        self, layer: int, resid: torch.Tensor, queries: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-head attention values ``z`` ``[batch, seq, heads, d_head]`` (TransformerLens hook_z);
        with ``queries``, only at those query positions (keys and values still see every position)."""
        pattern, v = self._attn_parts(layer, resid, queries)
        return _mix(pattern, v)

    def _attn_parts(
        self, layer: int, resid: torch.Tensor, queries: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The QK path's attention pattern ``[batch, heads, queries, seq]`` and the OV path's
        values ``[batch, heads, seq, d_head]`` of one layer."""
        parts = self._layers[layer]
        attn = parts.attn
        x = parts.ln1(resid)
        batch, seq, _ = x.shape
        xq = x if queries is None else x[:, queries]
        n_q = xq.shape[1]
        q = parts.q(xq).view(batch, n_q, attn.n_heads, attn.d_head).transpose(1, 2)
        k = parts.k(x).view(batch, seq, attn.n_kv_heads, attn.d_head).transpose(1, 2)
        v = parts.v(x).view(batch, seq, attn.n_kv_heads, attn.d_head).transpose(1, 2)
        if attn.rotary is not None:
            positions = self._position_ids[:batch]
            q_positions = positions if queries is None else positions[:, queries]
            q, _ = attn.rotary.apply_rope(q, q, position_ids=q_positions)
            _, k = attn.rotary.apply_rope(k, k, position_ids=positions)
        if attn.kv_repeats > 1:
            k = k.repeat_interleave(attn.kv_repeats, dim=1)
            v = v.repeat_interleave(attn.kv_repeats, dim=1)
        scores = torch.matmul(q, k.transpose(-2, -1)) / attn.scale
        scores = _softcap(scores, attn.attn_scores_soft_cap)
        if attn.causal:
            mask = attn.causal_mask[:seq, :seq]
            if queries is not None:
                mask = mask[queries]
            scores = scores.masked_fill(mask, float("-inf"))
            pattern = F.softmax(scores, dim=-1).masked_fill(mask, 0.0)
        else:
            pattern = F.softmax(scores, dim=-1)
        return pattern, v

    def _attn_out(self, layer: int, z: torch.Tensor) -> torch.Tensor:
        return self._layers[layer].o(z.reshape(z.shape[0], z.shape[1], -1))

    def _mlp_out(self, layer: int, resid: torch.Tensor) -> torch.Tensor:
        parts = self._layers[layer]
        if parts.mlp is None or parts.ln2 is None:
            raise ValueError(f"layer {layer} of this model has no MLP")
        return parts.mlp(parts.ln2(resid))

    def clean_mlp(self, layer: int) -> torch.Tensor:
        """The clean run's MLP output of ``layer`` ``[batch, seq, d_model]``."""
        out = self.mlp[layer]
        if out is None:
            raise ValueError("this model is attention-only and has no MLP outputs")
        return out

    def ablated_mlp(self, layer: int) -> torch.Tensor:
        """The MLP output of ``layer`` that replaces the clean one where it is ablated."""
        out = self.mlp_ablated[layer]
        if out is None:
            raise ValueError("this model is attention-only and has no MLP outputs")
        return out

    def _unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """Logits from the residual stream at the answer positions only ``[batch, k, d]``."""
        logits = self._head(self._ln_out(resid))
        return _softcap(logits, self.native.output_logits_soft_cap)

    def _clean_run(self) -> None:
        resid, self._position_ids = self._embed(self.tokens)
        self.resid_pre: list[torch.Tensor] = []
        self.resid_mid: list[torch.Tensor] = []
        self.z: list[torch.Tensor] = []
        self.pattern: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self.mlp: list[torch.Tensor | None] = []
        for layer in range(self.n_layers):
            self.resid_pre.append(resid)
            pattern, v = self._attn_parts(layer, resid)
            z = _mix(pattern, v)
            self.pattern.append(pattern)
            self.v.append(v)
            self.z.append(z)
            resid = resid + self._attn_out(layer, z)
            self.resid_mid.append(resid)
            if self.attn_only:
                self.mlp.append(None)
            else:
                out = self._mlp_out(layer, resid)
                self.mlp.append(out)
                resid = resid + out
        self.resid_final = resid
        self.clean_logits = self._unembed(resid[:, self.answer_positions])

    def _ensure_ablation_values(self) -> None:
        """Computed on first use: an engine used only for its clean answers never needs them."""
        if not self._ablated_ready:
            with torch.no_grad():
                self._ablation_values(self._seed)
            self._ablated_ready = True

    def _ablation_values(self, seed: int) -> None:
        if self.ablation == "mean":
            self.z_ablated = [z.mean(0, keepdim=True) for z in self.z]
            self.pattern_ablated = [p.mean(0, keepdim=True) for p in self.pattern]
            self.v_ablated = [v.mean(0, keepdim=True) for v in self.v]
            self.mlp_ablated = [None if m is None else m.mean(0, keepdim=True) for m in self.mlp]
        else:
            generator = torch.Generator().manual_seed(seed)
            # a random derangement: every example takes another example's activations
            order = torch.randperm(self.batch, generator=generator).to(self.device)
            perm = torch.empty_like(order)
            perm[order] = order.roll(1)
            self.z_ablated = [z[perm] for z in self.z]
            self.pattern_ablated = [p[perm] for p in self.pattern]
            self.v_ablated = [v[perm] for v in self.v]
            self.mlp_ablated = [None if m is None else m[perm] for m in self.mlp]

    # -- variants ----------------------------------------------------------------------------
    def full_mask(self) -> Mask:
        return Mask(
            qk=torch.ones(self.n_layers, self.seq, self.n_heads, dtype=torch.bool),
            ov=torch.ones(self.n_layers, self.seq, self.n_heads, dtype=torch.bool),
            mlps=torch.ones(self.n_layers, self.seq, dtype=torch.bool),
        )

    def mask_for(self, components: Sequence[Component]) -> Mask:
        """Everything ablated except ``components`` (at their positions)."""
        mask = Mask(
            qk=torch.zeros(self.n_layers, self.seq, self.n_heads, dtype=torch.bool),
            ov=torch.zeros(self.n_layers, self.seq, self.n_heads, dtype=torch.bool),
            mlps=torch.zeros(self.n_layers, self.seq, dtype=torch.bool),
        )
        for comp in components:
            where = slice(None) if comp.position is None else comp.position
            if comp.is_mlp:
                mask.mlps[comp.layer, where] = True
            if "QK" in comp.paths:
                mask.qk[comp.layer, where, comp.head] = True
            if "OV" in comp.paths:
                mask.ov[comp.layer, where, comp.head] = True
        if self.attn_only:
            mask.mlps[:] = True  # no MLPs: nothing to ablate
        return mask

    @torch.no_grad()
    def logits(self, mask: Mask) -> torch.Tensor:
        """Answer-position logits ``[batch, k, classes]`` with everything outside ``mask`` ablated."""
        qk, ov = mask.qk.to(self.device), mask.ov.to(self.device)
        heads = qk & ov
        mlps = mask.mlps.to(self.device)
        first = self._first_ablated(heads, mlps)
        if first is None:
            return self.clean_logits
        self._ensure_ablation_values()
        start_layer, start_sub = first
        answers = self.answer_positions
        last = self.n_layers - 1
        resid = self.resid_pre[start_layer] if start_sub == 0 else self.resid_mid[start_layer]
        changed = False
        selected = False  # True once resid holds the answer positions only (in the last layer)
        for layer in range(start_layer, self.n_layers):
            # In the last layer only the answer positions feed the logits: queries, MLP and
            # residual stream are computed there alone (keys and values still use every position).
            pos = answers if layer == last else slice(None)
            if not (layer == start_layer and start_sub == 1):
                keep = (qk[layer][pos], ov[layer][pos])
                z = self._masked_z(layer, resid, keep, pos, changed=changed)
                resid = resid[:, pos] + self._attn_out(layer, z)
                selected = layer == last
                changed = True
            if self.attn_only:
                continue
            if layer == last and not selected:
                resid, selected = resid[:, answers], True
            resid = resid + self._masked_mlp(layer, resid, mlps[layer][pos], pos, changed=changed)
            changed = True
        return self._unembed(resid if selected else resid[:, answers])

    def _first_ablated(self, heads: torch.Tensor, mlps: torch.Tensor) -> tuple[int, int] | None:
        """(layer, 0 for attention / 1 for the MLP) of the first ablated sublayer, or None."""
        for layer in range(self.n_layers):
            if not bool(heads[layer].all()):
                return layer, 0
            if not self.attn_only and not bool(mlps[layer].all()):
                return layer, 1
        return None

    def _masked_z(
        self,
        layer: int,
        resid: torch.Tensor,
        keep: tuple[torch.Tensor, torch.Tensor],
        pos: _Pos,
        *,
        changed: bool,
    ) -> torch.Tensor:
        """The layer's head outputs at ``pos``: kept heads recomputed (or cached while nothing
        upstream changed), the others their ablation values; a head with one path kept mixes
        that path's clean part with the other's ablation value."""
        keep_qk, keep_ov = keep
        ablated_z = self.z_ablated[layer][:, pos]
        if not bool((keep_qk | keep_ov).any()):
            return ablated_z.expand(self.batch, -1, -1, -1)
        if changed:
            last = layer == self.n_layers - 1
            pattern, v = self._attn_parts(layer, resid, self.answer_positions if last else None)
            z = _mix(pattern, v)
        else:
            pattern, v = self.pattern[layer][:, :, pos], self.v[layer]
            z = self.z[layer][:, pos]
        out = torch.where((keep_qk & keep_ov)[None, :, :, None], z, ablated_z)
        qk_only, ov_only = keep_qk & ~keep_ov, keep_ov & ~keep_qk
        if bool(qk_only.any()):
            out = torch.where(qk_only[None, :, :, None], _mix(pattern, self.v_ablated[layer]), out)
        if bool(ov_only.any()):
            ablated_pattern = self.pattern_ablated[layer][:, :, pos]
            out = torch.where(ov_only[None, :, :, None], _mix(ablated_pattern, v), out)
        return out

    def _masked_mlp(
        self, layer: int, resid: torch.Tensor, keep: torch.Tensor, pos: _Pos, *, changed: bool
    ) -> torch.Tensor:
        """The layer's MLP output at ``pos``, kept or ablated as ``keep`` says."""
        ablated = self.ablated_mlp(layer)[:, pos]
        if not bool(keep.any()):
            return ablated
        out = self._mlp_out(layer, resid) if changed else self.clean_mlp(layer)[:, pos]
        return torch.where(keep[None, :, None], out, ablated)


@torch.no_grad()
def naive_logits(model, engine: AblationEngine, mask: Mask) -> torch.Tensor:
    """The same variant the obvious way: one full ``run_with_hooks`` on the bridge."""
    engine._ensure_ablation_values()
    qk, ov = mask.qk.to(engine.device), mask.ov.to(engine.device)
    mlps = mask.mlps.to(engine.device)
    hooks = []
    seen: dict[str, torch.Tensor] = {}  # this layer's pattern and values, for its hook_z

    def keeper(key: str):
        def keep_hook(act, hook):
            seen[key] = act
            return act

        return keep_hook

    for layer in range(engine.n_layers):

        def z_hook(act, hook, layer=layer):
            # act [batch, seq, heads, d_head]; pattern [batch, heads, q, k]; v [batch, k, heads, d]
            pattern, v = seen["pattern"], seen["v"].transpose(1, 2)
            qk_only = (qk[layer] & ~ov[layer])[None, :, :, None]
            ov_only = (ov[layer] & ~qk[layer])[None, :, :, None]
            out = torch.where(
                (qk[layer] & ov[layer])[None, :, :, None], act, engine.z_ablated[layer]
            )
            if bool(qk_only.any()):  # only where a path is kept alone, as the engine does
                out = torch.where(qk_only, (pattern @ engine.v_ablated[layer]).transpose(1, 2), out)
            if bool(ov_only.any()):
                out = torch.where(ov_only, (engine.pattern_ablated[layer] @ v).transpose(1, 2), out)
            return out

        hooks.append((f"blocks.{layer}.attn.hook_pattern", keeper("pattern")))
        hooks.append((f"blocks.{layer}.attn.hook_v", keeper("v")))
        hooks.append((f"blocks.{layer}.attn.hook_z", z_hook))
        if not engine.attn_only:

            def mlp_hook(act, hook, layer=layer):
                return torch.where(mlps[layer][None, :, None], act, engine.mlp_ablated[layer])

            hooks.append((f"blocks.{layer}.hook_mlp_out", mlp_hook))
    logits = model.run_with_hooks(engine.tokens, fwd_hooks=hooks)
    return logits[:, engine.answer_positions]
