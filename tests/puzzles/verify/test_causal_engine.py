"""Interchange interventions: the engine equals one naive ``run_with_hooks`` per batch."""

from __future__ import annotations

import pytest
import torch

from puzzles.catalog import get_puzzle
from puzzles.models import load_task
from puzzles.verify.ablation import AblationEngine
from puzzles.verify.causal import InterventionEngine, Patch, naive_patched_logits
from puzzles.verify.engine import _model
from puzzles.verify.hypothesis import AttentionClaim, parse_site


def _setup(slug: str, n: int = 48):
    torch.set_num_threads(1)  # small models: threads only contend on a shared box
    puzzle = get_puzzle(slug)
    model, task = _model(puzzle, "cpu"), load_task(puzzle)
    tokens = task.generate(n, 5)
    with torch.no_grad():
        engine = AblationEngine(model, tokens, answer_positions=task.ANSWER_POSITIONS)
    cfg = model.cfg
    shape = dict(
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        attn_only=bool(cfg.attn_only),
        seq_len=tokens.shape[1],
        d_model=cfg.d_model,
        d_head=cfg.d_head,
    )
    return model, engine, shape


PALINDROME_SITES = [
    ["L0H0@11..20"],
    ["L1H1@END"],
    ["L1H0@3..21"],
    ["resid_pre L0 @ 11..20"],
    ["resid_post L0 @ 15"],
    ["resid_mid L1 @ END"],
    ["resid_post L1 @ END"],
    ["L0H0@11..20", "L0H1@11..20", "L1H1@END"],
    ["resid_post L0 @ 2..8", "L1H0@END"],
]


@pytest.mark.parametrize("sites", PALINDROME_SITES, ids=lambda s: "+".join(s))
def test_engine_equals_naive_patching_palindromes(sites) -> None:
    model, engine, shape = _setup("palindromes")
    generator = torch.Generator().manual_seed(0)
    bases = torch.randint(48, (32,), generator=generator)
    patches = [
        Patch(parse_site(s, **shape), torch.randint(48, (32,), generator=generator)) for s in sites
    ]
    ours = InterventionEngine(engine).logits(bases, patches)
    theirs = naive_patched_logits(model, engine, bases, patches)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    # and it is an intervention: the answers are not simply the clean ones
    assert not torch.allclose(ours, engine.clean_logits[bases])


@pytest.mark.parametrize("sites", [["L0MLP@3..9"], ["L0H0@5", "L0MLP@-1"]], ids=str)
def test_engine_equals_naive_with_mlp_and_direction(sites) -> None:
    model, engine, shape = _setup("cumsum_sign")
    generator = torch.Generator().manual_seed(1)
    bases = torch.randint(48, (32,), generator=generator)
    patches = [
        Patch(parse_site(s, **shape), torch.randint(48, (32,), generator=generator)) for s in sites
    ]
    direction = torch.randn(shape["d_model"], generator=generator).tolist()
    patches.append(
        Patch(
            parse_site("resid_post L0 @ 2..6", direction=direction, **shape),
            torch.randint(48, (32,), generator=generator),
        )
    )
    ours = InterventionEngine(engine).logits(bases, patches)
    theirs = naive_patched_logits(model, engine, bases, patches)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_attention_agreement_reads_the_pattern() -> None:
    _, engine, _ = _setup("palindromes")
    inter = InterventionEngine(engine)
    pattern = inter.attention_pattern(0, 0)
    assert torch.allclose(pattern.sum(-1), torch.ones(()), atol=1e-5)
    queries = tuple(range(11, 21))
    top = pattern[:, 11:21].argmax(-1)[0].tolist()
    claim = AttentionClaim(0, 0, queries, tuple(top), "L0H0 top keys of input 0")
    row = inter.attention_agreement(claim)
    assert 0.0 < row["top_share"] <= 1.0 and 0.0 < row["mean_weight"] <= 1.0


def test_resid_mid_patch_feeds_the_mlp() -> None:
    """The bridge's ``hook_resid_mid`` does not feed its MLP, so this one is checked by hand."""
    _, engine, shape = _setup("cumsum_sign", n=16)
    bases, sources = torch.arange(16), torch.arange(16).roll(1)
    site = parse_site("resid_mid L0 @ 4..9", **shape)
    resid = engine.resid_mid[0].clone()
    resid[:, 4:10] = engine.resid_mid[0][sources][:, 4:10]
    by_hand = engine._unembed(resid + engine._mlp_out(0, resid))[:, engine.answer_positions]
    ours = InterventionEngine(engine).logits(bases, [Patch(site, sources)])
    torch.testing.assert_close(ours, by_hand, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(ours, engine.clean_logits)
