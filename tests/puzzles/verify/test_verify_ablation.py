"""The ablation engine against the naive way (one full run_with_hooks per variant), on toy models."""

from __future__ import annotations

import itertools

import pytest
import torch
import transformer_lens.model_bridge.sources.native  # noqa: F401  (registers boot_native)
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge

from puzzles.verify.ablation import AblationEngine, naive_logits
from puzzles.verify.checks import metric_per_example
from puzzles.verify.circuit_check import circuit_check
from puzzles.verify.components import (
    Component,
    ComponentError,
    all_components,
    all_units,
    parse_circuit,
    parse_component,
    path_units,
)


def _toy(attn_only: bool, normalization: str | None = "LN"):
    cfg = TransformerBridgeConfig(
        n_layers=2,
        n_heads=2,
        d_model=16,
        d_head=8,
        n_ctx=6,
        d_vocab=7,
        d_vocab_out=3,
        attn_only=attn_only,
        normalization_type=normalization,
        act_fn="relu",
        seed=3,
        architecture="TransformerLensNative",
    )
    model = TransformerBridge.boot_native(cfg)
    model.eval()
    tokens = torch.randint(0, 7, (24, 6), generator=torch.Generator().manual_seed(0))
    return model, tokens


@pytest.mark.parametrize(
    ("attn_only", "ablation"), [(True, "mean"), (False, "mean"), (False, "resample")]
)
def test_engine_equals_naive(attn_only: bool, ablation: str) -> None:
    model, tokens = _toy(attn_only)
    engine = AblationEngine(model, tokens, answer_positions=[5, 2], ablation=ablation, seed=1)
    clean = model(tokens)[:, [5, 2]]
    torch.testing.assert_close(engine.clean_logits, clean, rtol=0, atol=1e-5)
    comps = all_components(n_layers=2, n_heads=2, attn_only=attn_only)
    extra = [Component(1, 0, 5), Component(0, 1, 0)]
    subsets = [(), tuple(comps)]
    subsets += list(itertools.combinations(comps, 1))
    subsets += list(itertools.combinations(comps, len(comps) - 1))
    checked = 0
    for subset in subsets:
        for with_extra in (False, True):
            mask = engine.mask_for(list(subset) + (extra if with_extra else []))
            torch.testing.assert_close(
                engine.logits(mask), naive_logits(model, engine, mask), rtol=1e-5, atol=1e-5
            )
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize(
    ("attn_only", "ablation"), [(True, "mean"), (False, "mean"), (False, "resample")]
)
def test_head_paths_equal_naive(attn_only: bool, ablation: str) -> None:
    """A head's QK or OV path kept alone: the engine against hooks that rebuild ``z`` from the
    hooked pattern and values, in every layer and at single positions."""
    model, tokens = _toy(attn_only)
    engine = AblationEngine(model, tokens, answer_positions=[5, 2], ablation=ablation, seed=1)
    kw = {"n_layers": 2, "n_heads": 2, "attn_only": attn_only, "seq_len": 6}
    circuits = [
        ["L0H0.QK"],
        ["L0H0.OV"],
        ["L0H0.QK", "L0H1.OV", "L1H0.OV", "L1H1.QK@5"],
        ["L0H0.OV@1..3", "L0H1", "L1H0.QK@END", "L1H1.OV@2"],
        ["L1H0.QK", "L1H1.OV"],  # the last layer only: computed at the answer positions
    ]
    if not attn_only:
        circuits += [["L0H1.OV", "L0MLP", "L1MLP@5"]]
    for entries in circuits:
        mask = engine.mask_for(parse_circuit(entries, **kw))
        torch.testing.assert_close(
            engine.logits(mask), naive_logits(model, engine, mask), rtol=1e-5, atol=1e-5
        )


def test_a_head_is_its_two_paths() -> None:
    """Both paths kept is the whole head; one path kept is neither the head nor its ablation."""
    model, tokens = _toy(attn_only=True)
    engine = AblationEngine(model, tokens, answer_positions=[5])
    kw = {"n_layers": 2, "n_heads": 2, "attn_only": True, "seq_len": 6}

    def logits(entries):
        return engine.logits(engine.mask_for(parse_circuit(entries, **kw)))

    torch.testing.assert_close(logits(["L0H0.QK", "L0H0.OV"]), logits(["L0H0"]))
    for path in ("L0H0.QK", "L0H0.OV"):
        assert not torch.allclose(logits([path]), logits(["L0H0"]))
        assert not torch.allclose(logits([path]), logits([]))


def test_path_names_and_sizes() -> None:
    kw = {"n_layers": 2, "n_heads": 2, "attn_only": False, "seq_len": 6}
    parsed = parse_circuit(["L0H0.qk", "L1H1.OV@2..END", "L1H1@3", "L0H0", "L0MLP@0..1"], **kw)
    # L0H0.QK adds nothing to the whole L0H0; L1H1.OV@3 nothing to the whole head at 3
    assert [c.name for c in parsed] == [
        "L1H1.OV@2",
        "L1H1.OV@4",
        "L1H1.OV@5",
        "L1H1@3",
        "L0H0",
        "L0MLP@0",
        "L0MLP@1",
    ]
    assert sum(len(path_units(c, 6)) for c in parsed) == 3 + 2 + 12 + 2
    assert len(all_units(**kw, paths=True)) == 2 * 6 * (2 * 2 + 1)
    for bad, why in [
        ("L0MLP.OV", "not a component"),
        ("L0H0.VO", "not a component"),
        ("L0H0@4..2", "empty"),
        ("L0H0@2..9", "positions run"),
    ]:
        with pytest.raises(ComponentError, match=why):
            parse_circuit([bad], **kw)


@pytest.mark.parametrize("attn_only", [True, False])
def test_a_last_layer_unit_spliced_from_its_component_pass_is_exact(attn_only: bool) -> None:
    """The circuit check's shortcut: the circuit without one last-layer unit equals the circuit
    without its component everywhere, read at the unit's position (nothing later reads it)."""
    from puzzles.verify.circuit_check import _LastLayer, _without

    model, tokens = _toy(attn_only)
    engine = AblationEngine(model, tokens, answer_positions=[5, 2, 3], ablation="resample")
    kw = {"n_layers": 2, "n_heads": 2, "attn_only": attn_only, "seq_len": 6}
    entries = ["L0H0", "L1H0", "L1H1.QK@2..5", "L1H1.OV@5"] + ([] if attn_only else ["L1MLP"])
    circuit = parse_circuit(entries, **kw)
    mask = engine.mask_for(circuit)
    last_layer = _LastLayer(engine, mask, engine.logits(mask))
    checked = 0
    for unit in [u for c in circuit for u in path_units(c, 6) if u.layer == 1]:
        spliced = last_layer.logits_without(unit)
        if unit.position not in (5, 2, 3):
            assert spliced is None
            continue
        torch.testing.assert_close(spliced, engine.logits(_without(mask, unit)))
        checked += 1
    assert checked >= 8
    assert last_layer.logits_without(Component(0, 0, 5)) is None  # not the last layer


def test_ablations_change_the_output() -> None:
    model, tokens = _toy(attn_only=False)
    engine = AblationEngine(model, tokens, answer_positions=[5])
    empty = engine.logits(engine.mask_for([]))
    assert not torch.allclose(empty, engine.clean_logits)
    assert engine.logits(engine.full_mask()) is engine.clean_logits


def test_last_layer_ablation_is_exact_by_linearity() -> None:
    model, tokens = _toy(attn_only=True)
    engine = AblationEngine(model, tokens, answer_positions=[5])
    comps = [Component(0, 0), Component(0, 1), Component(1, 1)]  # only L1H0 ablated
    mask = engine.mask_for(comps)
    torch.testing.assert_close(engine.logits(mask), naive_logits(model, engine, mask))


def test_metrics() -> None:
    logits = torch.tensor([[[2.0, 0.0, -1.0]], [[0.0, 1.0, 0.0]]])
    targets = torch.tensor([[0], [0]])
    assert metric_per_example(logits, targets, "accuracy").tolist() == [1.0, 0.0]
    torch.testing.assert_close(
        metric_per_example(logits, targets, "logit_diff"), torch.tensor([2.5, -0.5])
    )
    loss = metric_per_example(logits, targets, "loss")
    assert loss[0] < loss[1]
    with pytest.raises(ValueError):
        metric_per_example(logits, targets, "bogus")


@pytest.mark.parametrize("metric", ["logit_diff", "accuracy", "loss"])
def test_circuit_check_scores(metric: str) -> None:
    model, tokens = _toy(attn_only=False)
    engine = AblationEngine(model, tokens, answer_positions=[5])
    config = {"metric": metric, "faithfulness_threshold": 0.5, "minimality_threshold": 0.0}
    everything = all_components(n_layers=2, n_heads=2, attn_only=False)
    result = circuit_check(engine, everything, config=config)
    if result.score is not None:
        assert result.score == pytest.approx(1.0)
        assert result.passed
    assert set(result.details["necessity"]) == {c.name for c in everything}
    assert 0.0 <= result.details["minimality"] <= 1.0
    pe = result.details["per_example_faithfulness"]
    assert pe["n_examples"] == tokens.shape[0]


def test_component_names() -> None:
    kw = {"n_layers": 2, "n_heads": 4, "attn_only": False, "seq_len": 10}
    assert parse_component("L1H3", **kw) == Component(1, 3)
    assert parse_component("l0mlp", **kw) == Component(0, None)
    assert parse_component("L1H0@-1", **kw) == Component(1, 0, 9)
    assert parse_component("L1H0@-1", **kw).name == "L1H0@9"
    assert Component(1, 0).hook_name == "blocks.1.attn.hook_z"
    assert Component(0, None).hook_name == "blocks.0.hook_mlp_out"
    assert parse_circuit(["L0H0", "L0H0", "L1MLP"], **kw) == [Component(0, 0), Component(1, None)]
    for bad, why in [
        ("L2H0", "layers 0..1"),
        ("L0H4", "heads 0..3"),
        ("L0H0@10", "positions"),
        ("head 3", "not a component"),
    ]:
        with pytest.raises(ComponentError, match=why):
            parse_component(bad, **kw)
    with pytest.raises(ComponentError, match="attention-only"):
        parse_component("L0MLP", n_layers=2, n_heads=4, attn_only=True, seq_len=10)
