"""A worker child's warm-up: the open rounds' models and hard sets, and nothing else.

The first verdict after a start waits for whatever the warm-up has not done yet, and on two cores
loading the rest of the catalog beside the first job slowed it by about 1.4 s (issue 17).
"""

from __future__ import annotations

from support.queue import seed_round

from bot.settings import get_settings
from bot.worker import runtime, seeds, warmup
from puzzles.verify import engine, hardset
from storage.db import make_engine, session_factory, upgrade_database


def test_warm_up_loads_the_open_rounds_models_and_mines_their_hard_sets_only(
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
    warmup.warm_open_rounds(settings)

    assert seen == [("palindromes", 0)], "only the open round's model, loaded before its mining"
    seed = seeds.hard_set_seed(settings, "palindromes", round_id)
    puzzle = runtime.puzzle("palindromes", settings)
    assert any(key[0] == str(puzzle.weights_path) and key[-3] == seed for key in hardset._CACHE)
