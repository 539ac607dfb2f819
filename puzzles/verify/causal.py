"""Interchange interventions on the puzzle model (the trusted side of format v2).

An intervention runs the model on base inputs with the activations at some sites taken from source
inputs (both drawn from one pool whose clean run is cached by :class:`AblationEngine`). Like the
ablation variants, a patched run starts from the cached residual stream just before the first
patched sublayer, reuses cached activations until something upstream changed, and in the last layer
computes only the answer positions. ``naive_patched_logits`` is the obvious way (a clean cache of the
sources, then one ``run_with_hooks`` on the bases); tests and bench/causal.py compare the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from puzzles.verify.ablation import AblationEngine, _softcap
from puzzles.verify.hypothesis import AttentionClaim, Site


@dataclass
class Patch:
    """Set ``site`` on base row ``i`` to its clean value on source row ``sources[i]``."""

    site: Site
    sources: torch.Tensor


def _apply(site: Site, base: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``base`` with the site's slice replaced by ``source`` (or only its ``direction`` component).

    Head activations are ``[batch, seq, heads, d_head]``, the others ``[batch, seq, d]``.
    """
    out = base.clone()
    pos = torch.as_tensor(site.positions, device=base.device)
    if site.kind == "head":
        old, new = base[:, pos, site.head], source[:, pos, site.head]
    else:
        old, new = base[:, pos], source[:, pos]
    if site.direction is not None:
        d = torch.tensor(site.direction, dtype=base.dtype, device=base.device)
        new = old + ((new - old) @ d)[..., None] * d
    if site.kind == "head":
        out[:, pos, site.head] = new
    else:
        out[:, pos] = new
    return out


class InterventionEngine:
    """Patched runs of an :class:`AblationEngine`'s pool (its cached clean run is reused)."""

    def __init__(self, engine: AblationEngine) -> None:
        self.engine = engine
        self.n_layers = engine.n_layers
        self.answers = engine.answer_positions

    def _resid(self, stage: int) -> torch.Tensor:
        e = self.engine
        if stage >= 2 * self.n_layers:
            return e.resid_final
        layer, sub = divmod(stage, 2)
        return e.resid_pre[layer] if sub == 0 else e.resid_mid[layer]

    @torch.no_grad()
    def logits(self, bases: torch.Tensor, patches: Sequence[Patch]) -> torch.Tensor:
        """Answer-position logits ``[len(bases), k, classes]`` of the patched runs."""
        e = self.engine
        bases = bases.to(e.device)
        if not patches:
            return e.clean_logits[bases]
        patches = [Patch(p.site, p.sources.to(e.device)) for p in patches]
        start = min(p.site.stage for p in patches)
        resid = self._resid(start)[bases]
        last = self.n_layers - 1
        changed = False
        if start == 2 * last + 1:  # starting at the last MLP: only the answer positions matter
            resid = resid[:, self.answers]

        def patch_resid(kind: str, layer: int, resid: torch.Tensor, cache: torch.Tensor):
            nonlocal changed
            for p in patches:
                if p.site.kind == kind and p.site.layer == layer:
                    resid = _apply(p.site, resid, cache[p.sources])
                    changed = True
            return resid

        for stage in range(start, 2 * self.n_layers):
            layer, sub = divmod(stage, 2)
            if sub == 0:
                if layer > 0:  # resid_post of the layer before is this layer's resid_pre
                    resid = patch_resid("resid_post", layer - 1, resid, e.resid_pre[layer])
                resid = patch_resid("resid_pre", layer, resid, e.resid_pre[layer])
                heads = [p for p in patches if p.site.kind == "head" and p.site.layer == layer]
                if layer == last:
                    # only the answer positions reach the logits from here on: queries there only
                    answers = self.answers
                    if changed:
                        z = e._attn_z(layer, resid, answers)
                    else:
                        z = e.z[layer][:, answers][bases]
                    for p in heads:
                        site = self._at_answers(p.site)
                        if site is not None:
                            z = _apply(site, z, e.z[layer][:, answers][p.sources])
                    resid = resid[:, answers]
                else:
                    z = e._attn_z(layer, resid) if changed else e.z[layer][bases]
                    for p in heads:
                        z = _apply(p.site, z, e.z[layer][p.sources])
                changed = changed or bool(heads)
                resid = resid + e._attn_out(layer, z)
                continue
            if layer < last:
                resid = patch_resid("resid_mid", layer, resid, e.resid_mid[layer])
            elif any(p.site.kind == "resid_mid" and p.site.layer == layer for p in patches):
                resid = self._answer_patch("resid_mid", layer, resid, patches, e.resid_mid[layer])
                changed = True
            if not e.attn_only:
                mlps = [p for p in patches if p.site.kind == "mlp" and p.site.layer == layer]
                if changed:
                    out = e._mlp_out(layer, resid)
                else:
                    out = e.mlp[layer][bases]
                    out = out[:, self.answers] if layer == last else out
                if mlps:
                    full = self._full(out, layer, bases) if layer == last else out
                    for p in mlps:
                        full = _apply(p.site, full, e.mlp[layer][p.sources])
                    out = full[:, self.answers] if layer == last else full
                    changed = True
                resid = resid + out
        if start >= 2 * self.n_layers or any(
            p.site.kind == "resid_post" and p.site.layer == last for p in patches
        ):
            if start >= 2 * self.n_layers:
                resid = resid[:, self.answers]
            resid = self._answer_patch("resid_post", last, resid, patches, e.resid_final)
        return e._unembed(resid)

    def _at_answers(self, site: Site) -> Site | None:
        """The site on a tensor holding the answer positions only (None: no answer position)."""
        keep = tuple(i for i, a in enumerate(self.answers.tolist()) if a in site.positions)
        if not keep:
            return None
        return Site(site.kind, site.layer, site.head, keep, site.direction)

    def _full(self, selected: torch.Tensor, layer: int, bases: torch.Tensor) -> torch.Tensor:
        """A full-sequence tensor holding ``selected`` at the answer positions (patch helper)."""
        full = self.engine.mlp[layer][bases].clone()
        full[:, self.answers] = selected
        return full

    def _answer_patch(self, kind, layer, resid, patches, cache) -> torch.Tensor:
        """Residual patches applied to a stream that holds the answer positions only."""
        answers = self.answers.tolist()
        for p in patches:
            if p.site.kind != kind or p.site.layer != layer:
                continue
            keep = [i for i, a in enumerate(answers) if a in p.site.positions]
            if not keep:
                continue
            site = Site(p.site.kind, layer, None, tuple(keep), p.site.direction)
            resid = _apply(site, resid, cache[p.sources][:, self.answers])
        return resid

    # -- attention -----------------------------------------------------------------------------
    @torch.no_grad()
    def attention_pattern(self, layer: int, head: int) -> torch.Tensor:
        """The clean attention pattern ``[batch, query, key]`` of one head on the pool."""
        e = self.engine
        parts = e._layers[layer]
        attn = parts.attn
        x = parts.ln1(e.resid_pre[layer])
        batch, seq, _ = x.shape
        q = parts.q(x).view(batch, seq, attn.n_heads, attn.d_head).transpose(1, 2)
        k = parts.k(x).view(batch, seq, attn.n_kv_heads, attn.d_head).transpose(1, 2)
        if attn.rotary is not None:
            q, _ = attn.rotary.apply_rope(q, q, position_ids=e._position_ids)
            _, k = attn.rotary.apply_rope(k, k, position_ids=e._position_ids)
        if attn.kv_repeats > 1:
            k = k.repeat_interleave(attn.kv_repeats, dim=1)
        scores = torch.matmul(q[:, head], k[:, head].transpose(-2, -1)) / attn.scale
        scores = _softcap(scores, attn.attn_scores_soft_cap)
        if attn.causal:
            mask = attn.causal_mask[:seq, :seq]
            return F.softmax(scores.masked_fill(mask, float("-inf")), dim=-1).masked_fill(mask, 0)
        return F.softmax(scores, dim=-1)

    def attention_agreement(self, claim: AttentionClaim) -> dict[str, float]:
        """Share of (input, query) where the claimed key gets the most attention; mean weight on it."""
        pattern = self.attention_pattern(claim.layer, claim.head)
        queries = torch.as_tensor(claim.queries, device=pattern.device)
        keys = torch.as_tensor(claim.keys, device=pattern.device)
        rows = pattern[:, queries]  # [batch, n_q, key]
        on_key = rows.gather(-1, keys[None, :, None].expand(rows.shape[0], -1, 1))[..., 0]
        top = rows.argmax(-1) == keys[None, :]
        per_query = top.float().mean(0)
        return {
            "top_share": float(top.float().mean()),
            "mean_weight": float(on_key.mean()),
            "worst_query": int(claim.queries[int(per_query.argmin())]),
            "worst_query_share": float(per_query.min()),
        }


@torch.no_grad()
def naive_patched_logits(
    model, engine: AblationEngine, bases, patches: Sequence[Patch], cache=None
):
    """The same intervention the obvious way: the sources' activations from a clean
    ``run_with_cache`` of the pool (pass ``cache`` to reuse one), then one ``run_with_hooks``."""
    tokens = engine.tokens
    if cache is None:
        names = sorted({p.site.hook_name for p in patches})
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    hooks = []
    for p in patches:

        def hook(act, hook, p=p):
            return _apply(p.site, act, cache[p.site.hook_name][p.sources.to(act.device)])

        hooks.append((p.site.hook_name, hook))
    logits = model.run_with_hooks(tokens[bases.to(tokens.device)], fwd_hooks=hooks)
    return logits[:, engine.answer_positions]
