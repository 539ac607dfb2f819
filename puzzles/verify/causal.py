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


@dataclass
class _PatchedRun:
    """One batch of patched runs: its base rows, its patches, and whether anything upstream of
    the current sublayer differs from the clean run yet (until then cached activations serve)."""

    bases: torch.Tensor
    patches: list[Patch]
    changed: bool = False

    def at(self, kind: str, layer: int) -> list[Patch]:
        return [p for p in self.patches if p.site.kind == kind and p.site.layer == layer]


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
        run = _PatchedRun(bases, [Patch(p.site, p.sources.to(e.device)) for p in patches])
        start = min(p.site.stage for p in run.patches)
        resid = self._resid(start)[bases]
        last = self.n_layers - 1
        if start == 2 * last + 1:  # starting at the last MLP: only the answer positions matter
            resid = resid[:, self.answers]
        for stage in range(start, 2 * self.n_layers):
            layer, sub = divmod(stage, 2)
            if sub == 0:
                resid = self._attention_stage(run, layer, resid)
            else:
                resid = self._mlp_stage(run, layer, resid)
        if start >= 2 * self.n_layers or run.at("resid_post", last):
            if start >= 2 * self.n_layers:
                resid = resid[:, self.answers]
            resid = self._answer_patch("resid_post", last, resid, run.patches, e.resid_final)
        return e._unembed(resid)

    def _patch_resid(
        self, run: _PatchedRun, kind: str, layer: int, resid: torch.Tensor, cache: torch.Tensor
    ) -> torch.Tensor:
        for p in run.at(kind, layer):
            resid = _apply(p.site, resid, cache[p.sources])
            run.changed = True
        return resid

    def _attention_stage(self, run: _PatchedRun, layer: int, resid: torch.Tensor) -> torch.Tensor:
        """The residual stream after the layer's attention, its patches applied."""
        e = self.engine
        if layer > 0:  # resid_post of the layer before is this layer's resid_pre
            resid = self._patch_resid(run, "resid_post", layer - 1, resid, e.resid_pre[layer])
        resid = self._patch_resid(run, "resid_pre", layer, resid, e.resid_pre[layer])
        heads = run.at("head", layer)
        if layer == self.n_layers - 1:
            z = self._last_layer_z(run, layer, resid, heads)
            resid = resid[:, self.answers]
        else:
            z = e._attn_z(layer, resid) if run.changed else e.z[layer][run.bases]
            for p in heads:
                z = _apply(p.site, z, e.z[layer][p.sources])
        run.changed = run.changed or bool(heads)
        return resid + e._attn_out(layer, z)

    def _last_layer_z(
        self, run: _PatchedRun, layer: int, resid: torch.Tensor, heads: list[Patch]
    ) -> torch.Tensor:
        """Only the answer positions reach the logits from here on: queries there only."""
        e = self.engine
        answers = self.answers
        z = e._attn_z(layer, resid, answers) if run.changed else e.z[layer][:, answers][run.bases]
        for p in heads:
            site = self._at_answers(p.site)
            if site is not None:
                z = _apply(site, z, e.z[layer][:, answers][p.sources])
        return z

    def _mlp_stage(self, run: _PatchedRun, layer: int, resid: torch.Tensor) -> torch.Tensor:
        """The residual stream after the layer's MLP sublayer, its patches applied."""
        e = self.engine
        if layer < self.n_layers - 1:
            resid = self._patch_resid(run, "resid_mid", layer, resid, e.resid_mid[layer])
        elif run.at("resid_mid", layer):
            resid = self._answer_patch("resid_mid", layer, resid, run.patches, e.resid_mid[layer])
            run.changed = True
        if e.attn_only:
            return resid
        return resid + self._mlp_out(run, layer, resid)

    def _mlp_out(self, run: _PatchedRun, layer: int, resid: torch.Tensor) -> torch.Tensor:
        e = self.engine
        last = layer == self.n_layers - 1
        mlps = run.at("mlp", layer)
        if run.changed:
            out = e._mlp_out(layer, resid)
        else:
            out = e.clean_mlp(layer)[run.bases]
            out = out[:, self.answers] if last else out
        if mlps:
            full = self._full(out, layer, run.bases) if last else out
            for p in mlps:
                full = _apply(p.site, full, e.clean_mlp(layer)[p.sources])
            out = full[:, self.answers] if last else full
            run.changed = True
        return out

    def _at_answers(self, site: Site) -> Site | None:
        """The site on a tensor holding the answer positions only (None: no answer position)."""
        keep = tuple(i for i, a in enumerate(self.answers.tolist()) if a in site.positions)
        if not keep:
            return None
        return Site(site.kind, site.layer, site.head, keep, site.direction)

    def _full(self, selected: torch.Tensor, layer: int, bases: torch.Tensor) -> torch.Tensor:
        """A full-sequence tensor holding ``selected`` at the answer positions (patch helper)."""
        full = self.engine.clean_mlp(layer)[bases].clone()
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
