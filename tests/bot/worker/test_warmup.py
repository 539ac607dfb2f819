"""A worker child's warm-up: the open rounds' models and hard sets first, then the other models.

The first verdict after a start waits for whatever the warm-up has not done yet, so an open round's
hard set must be mined before the rest of the catalog's models load (issue 17).
"""

from __future__ import annotations

from support.queue import seed_round

from bot.settings import get_settings
from bot.worker import runtime, seeds, warmup
from puzzles.verify import engine, hardset
from storage.db import make_engine, session_factory, upgrade_database


def test_warm_up_mines_the_open_rounds_hard_sets_before_loading_the_other_models(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("CIRCUITBOARD_DATABASE_URL", f"sqlite:///{tmp_path / 'warm.db'}")
    # a small hard set: the order is under test, not the mining
    monkeypatch.setenv("CIRCUITBOARD_VERIFY_OVERRIDES", '{"hardset_pool": 500, "hardset_size": 32}')
    get_settings.cache_clear()
    settings = get_settings()
    upgrade_database(settings.db_url)
    round_id = seed_round(session_factory(make_engine(settings.db_url)), "palindromes")
    monkeypatch.setattr(engine, "_MODELS", {})
    monkeypatch.setattr(hardset, "_CACHE", {})
    seen: list[tuple[str, int]] = []  # (what was ready, how many hard sets) at each model load
    real_load = engine.load_model

    def load_model(puzzle, device="cpu"):
        seen.append((puzzle.slug, len(hardset._CACHE)))
        return real_load(puzzle, device=device)

    monkeypatch.setattr(engine, "load_model", load_model)
    warmup._load_models(["sorted_list", "palindromes", "cumsum_sign"], settings)

    assert [slug for slug, _ in seen] == ["palindromes", "sorted_list", "cumsum_sign"]
    assert [mined for _, mined in seen] == [0, 1, 1], "the other models loaded before the mining"
    seed = seeds.hard_set_seed(settings, "palindromes", round_id)
    puzzle = runtime.puzzle("palindromes", settings)
    assert any(key[0] == str(puzzle.weights_path) and key[-3] == seed for key in hardset._CACHE)
