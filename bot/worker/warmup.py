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
    """Start a sandbox per distinct limits of the catalog now, and load the puzzle models in
    the background, so the first job waits for neither.

    Starting is a Popen (torch is imported inside it in the background) and the models load
    in a thread: cheap enough for Celery's child start-up timeout.
    """
    try:
        from puzzles.catalog import list_puzzles

        slugs = [entry.slug for entry in list_puzzles()]
        for slug in slugs:
            runtime.sandbox_pool(runtime.puzzle(slug, settings), settings)
    except Exception:  # a warm-up problem shows up again, with its real message, in the job
        log.warning("worker warm-up failed", exc_info=True)
        return
    threading.Thread(
        target=_load_models, args=(slugs, settings), name="model-warm-up", daemon=True
    ).start()


def _load_models(slugs: list[str], settings: Settings) -> None:
    """The open rounds' models and hard sets first (a job for them may already be waiting: it
    waits for this mining rather than repeating it), then the rest of the catalog's models."""
    from puzzles.verify.engine import preload_model

    device = runtime.worker_device()
    done = _warm_open_rounds(settings, device)
    for slug in slugs:
        if slug in done:
            continue
        try:
            preload_model(runtime.puzzle(slug, settings), device)
        except Exception:  # the job loads it again and reports a real problem itself
            log.warning("could not preload the model of %s", slug, exc_info=True)


def _warm_open_rounds(settings: Settings, device: str) -> set[str]:
    """Load each open round's model and mine its hard set; the slugs whose model is loaded."""
    from puzzles.verify.engine import preload_hard_set, preload_model

    try:
        with session_scope(runtime.sessions(settings)) as session:
            rounds = open_rounds(session)
    except Exception:  # no database yet (a worker started before `db upgrade`): the job mines it
        log.warning("could not list the open rounds to mine their hard sets", exc_info=True)
        return set()
    done: set[str] = set()
    for round_id, slug in rounds:
        try:
            puzzle = runtime.puzzle(slug, settings)
            preload_model(puzzle, device)
            done.add(slug)
            seed = hard_set_seed(settings, slug, round_id)
            preload_hard_set(puzzle, seed=seed, device=device)
        except Exception:
            log.warning("could not warm up round %s (%s)", round_id, slug, exc_info=True)
    return done
