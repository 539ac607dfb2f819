"""The warm pool: a few sandboxes started ahead (torch imported), each handed out once, so a
submission does not wait for interpreter start-up."""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING

from puzzles.verify.sandbox.bwrap import bwrap_path
from puzzles.verify.sandbox.limits import SandboxLimits
from puzzles.verify.sandbox.process import Sandbox
from puzzles.verify.sandbox.protocol import SandboxOutcome

if TYPE_CHECKING:
    import torch


class SandboxPool:
    """A few sandboxes started ahead (torch imported), each handed out once, then replaced.

    Replacements are started by one long-lived pool thread: bwrap's ``--die-with-parent`` is tied
    to the thread that spawned it, so a sandbox started from a short-lived request thread would
    die with that thread.
    """

    def __init__(
        self, size: int = 2, limits: SandboxLimits | None = None, *, use_bwrap: bool = True
    ) -> None:
        self.size = max(1, size)
        self.limits = limits or SandboxLimits()
        self.use_bwrap = use_bwrap
        if use_bwrap and bwrap_path() is None:
            Sandbox(self.limits)  # raises SandboxUnavailable with the explanation
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._ready: deque[Sandbox] = deque()
        self._closed = False
        self._thread = threading.Thread(target=self._refill, name="sandbox-pool", daemon=True)
        self._thread.start()
        self._wake.set()

    def _refill(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    if self._closed or len(self._ready) >= self.size:
                        break
                try:
                    # niced: a replacement importing torch must not slow the verification
                    # that is running right now (the submission's own code runs niced too)
                    box = Sandbox(self.limits, use_bwrap=self.use_bwrap, nice=10)
                except Exception:  # the next acquire starts one itself and reports the problem
                    break
                with self._lock:
                    if self._closed:
                        box.close()
                        return
                    self._ready.append(box)
            if self._closed:
                return

    def acquire(self) -> Sandbox:
        """A fresh, never-used sandbox: pre-started when one is ready, else started now."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the sandbox pool is closed")
            box = None
            while self._ready:
                candidate = self._ready.popleft()
                if candidate.proc.poll() is None:
                    box = candidate
                    break
                candidate.close()
        self._wake.set()
        return box if box is not None else Sandbox(self.limits, use_bwrap=self.use_bwrap)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            while self._ready:
                self._ready.popleft().close()
        self._wake.set()
        self._thread.join(timeout=30)
        with self._lock:
            while self._ready:
                self._ready.popleft().close()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_submission(
    source: str,
    *,
    tokens: torch.Tensor | None = None,
    k: int = 1,
    n_classes: int = 2,
    limits: SandboxLimits | None = None,
    sandbox: bool = True,
    pool: SandboxPool | None = None,
) -> SandboxOutcome:
    """Run a submission once in a fresh sandbox (from ``pool`` when given)."""
    box = pool.acquire() if pool is not None and sandbox else Sandbox(limits, use_bwrap=sandbox)
    return box.run(source, tokens=tokens, k=k, n_classes=n_classes)
