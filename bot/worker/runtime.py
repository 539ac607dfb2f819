"""What a worker process keeps between jobs: database sessions, catalog entries, pre-started
sandboxes and its device. A forked pool child drops what it inherited (``forget_inherited``)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from bot.settings import Settings
from storage.db import make_engine, session_factory

if TYPE_CHECKING:
    from puzzles.catalog import Puzzle

_factories: dict[str, sessionmaker[Session]] = {}
_puzzles: dict[str, Puzzle] = {}
_pools: dict[Any, Any] = {}
_device: str | None = None


def sessions(settings: Settings) -> sessionmaker[Session]:
    """One session factory per database per process."""
    url = settings.db_url
    if url not in _factories:
        _factories[url] = session_factory(make_engine(url))
    return _factories[url]


def forget_inherited() -> None:
    """A fresh worker child: no database connections or sandboxes inherited from the parent."""
    for factory in _factories.values():
        bind = factory.kw.get("bind")
        if bind is not None:
            bind.dispose(close=False)
    _factories.clear()
    _pools.clear()


def worker_device() -> str:
    """Chosen once per process: CUDA when this machine has it, else the CPU."""
    global _device
    if _device is None:
        import torch

        _device = "cuda" if torch.cuda.is_available() else "cpu"
    return _device


def puzzle(slug: str, settings: Settings) -> Puzzle:
    """Catalog entries are read once per process, with the ``verify_overrides`` merged in."""
    key = f"{slug}:{sorted(settings.verify_overrides.items())}"
    if key not in _puzzles:
        from puzzles.catalog import get_puzzle

        entry = get_puzzle(slug)
        if settings.verify_overrides:
            verify = {**entry.verify, **settings.verify_overrides}
            config = {**entry.config, "verify": verify}
            entry = dataclasses.replace(entry, verify=verify, config=config)
        _puzzles[key] = entry
    return _puzzles[key]


def sandbox_pool(entry: Puzzle, settings: Settings) -> Any:
    """One pre-started sandbox per limits per process, so the next job skips the torch import."""
    if settings.unsafe_no_sandbox:
        return None
    from puzzles.verify import SandboxLimits, SandboxPool

    limits = SandboxLimits.from_config(entry.verify)
    if limits not in _pools:
        _pools[limits] = SandboxPool(size=1, limits=limits)
    return _pools[limits]
