"""Warm a fresh worker child up, so the first job waits neither for a sandbox nor a model."""

from __future__ import annotations

import logging
import threading

from bot.services.rounds import open_rounds
from bot.settings import Settings
from bot.worker import runtime
from bot.worker.seeds import hard_set_seed
from storage.db import session_scope

log = logging.getLogger(__name__)


def warm_up(settings: Settings) -> None:
    """Start a sandbox per distinct limits of the catalog now, and in the background load the
    open rounds' models and mine their hard sets, so the first job waits for none of it.

    Starting is a Popen (torch is imported inside it in the background) and the models load
    in a thread: cheap enough for Celery's child start-up timeout. Other puzzles' models load on
    first use (about 0.3 s each): loading the whole catalog here competed with the first job
    for the CPU and made it about 1.4 s slower on two cores.
    """
    try:
        from puzzles.catalog import list_puzzles

        for entry in list_puzzles():
            runtime.sandbox_pool(runtime.puzzle(entry.slug, settings), settings)
    except Exception:  # a warm-up problem shows up again, with its real message, in the job
        log.warning("worker warm-up failed", exc_info=True)
        return
    threading.Thread(
        target=warm_open_rounds, args=(settings,), name="model-warm-up", daemon=True
    ).start()


def warm_open_rounds(settings: Settings) -> None:
    """Load each open round's model and mine its hard set (a job for that round arriving
    meanwhile waits for this mining rather than repeating it)."""
    from puzzles.verify.engine import preload_hard_set, preload_model

    device = runtime.worker_device()
    try:
        with session_scope(runtime.sessions(settings)) as session:
            rounds = open_rounds(session)
    except Exception:  # no database yet (a worker started before `db upgrade`): the job mines it
        log.warning("could not list the open rounds to mine their hard sets", exc_info=True)
        return
    for round_id, slug in rounds:
        try:
            puzzle = runtime.puzzle(slug, settings)
            preload_model(puzzle, device)
            seed = hard_set_seed(settings, slug, round_id)
            preload_hard_set(puzzle, seed=seed, device=device)
        except Exception:
            log.warning("could not warm up round %s (%s)", round_id, slug, exc_info=True)
