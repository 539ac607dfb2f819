"""Legacy import: a HookedTransformer-layout checkpoint becomes a catalog entry with identical logits."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from bot.cli import app
from puzzles.catalog import get_puzzle, list_puzzles
from puzzles.legacy import LegacyImportError, export_legacy_state_dict, import_legacy
from puzzles.models import load_model, load_task


def _legacy_files(tmp_path, slug="palindromes"):
    puzzle = get_puzzle(slug)
    model = load_model(puzzle)
    legacy = export_legacy_state_dict(model)
    assert "blocks.0.attn.W_Q" in legacy and "embed.W_E" in legacy and "unembed.W_U" in legacy
    cfg = model.cfg
    assert legacy["blocks.0.attn.W_Q"].shape == (cfg.n_heads, cfg.d_model, cfg.d_head)
    ckpt = tmp_path / "old.pt"
    torch.save(legacy, ckpt)
    ht_config = dict(
        puzzle.model_config,
        model_name="old-puzzle",
        device="cpu",
        seed=None,
        tokenizer_name=None,
        original_architecture=None,
        init_mode="gpt2",
    )
    config = tmp_path / "config.json"
    config.write_text(json.dumps(ht_config))
    return puzzle, model, ckpt, config


def test_round_trip_gives_identical_logits(tmp_path) -> None:
    puzzle, model, ckpt, config = _legacy_files(tmp_path)
    root = tmp_path / "catalog"
    imported = import_legacy(ckpt, config, "old_palindromes", task="palindromes", catalog_root=root)
    assert imported.path == root / "old_palindromes"
    assert imported.heldout_accuracy == pytest.approx(puzzle.heldout_accuracy, abs=0.01)
    tokens = load_task(puzzle).generate(256, seed=7)
    with torch.no_grad():
        assert torch.equal(load_model(imported)(tokens), model(tokens))
    assert [p.slug for p in list_puzzles(roots=[root])] == ["old_palindromes"]


def test_cli_import_and_clear_errors(tmp_path, monkeypatch) -> None:
    _, _, ckpt, config = _legacy_files(tmp_path)
    root = tmp_path / "catalog"
    runner = CliRunner()
    args = [
        "puzzles",
        "import-legacy",
        str(ckpt),
        "--config",
        str(config),
        "--task",
        "palindromes",
        "--catalog-dir",
        str(root),
    ]
    result = runner.invoke(app, [*args, "--slug", "legacy_pal"])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("CIRCUITBOARD_CATALOG_PATH", str(root))
    assert "legacy_pal" in [p.slug for p in list_puzzles()]
    again = runner.invoke(app, [*args, "--slug", "legacy_pal"])
    assert again.exit_code == 2 and "already exists" in again.output


def test_mismatched_config_and_pickles_are_refused(tmp_path) -> None:
    _, _, ckpt, config = _legacy_files(tmp_path)
    wrong = json.loads(config.read_text())
    wrong.update(n_heads=4, d_head=7)
    config.write_text(json.dumps(wrong))
    with pytest.raises(LegacyImportError, match="does not match"):
        import_legacy(ckpt, config, "bad", task="palindromes", catalog_root=tmp_path / "c")
    assert not (tmp_path / "c" / "bad").exists()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(LegacyImportError, match="tensors-only"):
        import_legacy(evil, config, "evil", task="palindromes", catalog_root=tmp_path / "c")
