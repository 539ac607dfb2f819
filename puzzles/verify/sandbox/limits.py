"""What one sandbox may use, how the kernel is told (rlimits), and how a breach is described."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
from dataclasses import dataclass
from typing import Any

from puzzles.verify import cgroups

INTERPRETER_MB = 512
"""Memory a sandbox's cgroup allows on top of ``memory_mb`` for the interpreter with torch loaded
(resident ~150 MB with a CPU build), so ``memory_mb`` is what the submission itself may use."""
IMPORT_ADDRESS_SPACE_MB = 16_384
"""RLIMIT_AS while the runner imports torch, before it lowers the limit to base + ``memory_mb``
(no submission code runs under this one)."""
START_SLACK = 16
"""Tasks other sandboxes of a shared uid may add while one starts (its limit is lowered after)."""


@dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int = 1536
    """Memory of the whole sandbox with a cgroup (all processes and tmpfs files); also the
    address space each process may add to the interpreter with torch imported (RLIMIT_AS is
    set to that base plus this once torch is in: ~0.6 GB with a CPU build of torch, ~3.8 GB with
    a CUDA build)."""
    cpu_seconds: int = 60
    wall_seconds: float = 30.0
    """Wall clock for one job, counted from handing the job over (not from interpreter start)."""
    start_seconds: float = 60.0
    nproc: int = 64
    """Tasks (processes and threads) of the whole sandbox, with a cgroup or a uid of its own."""
    fallback_nproc: int = 8
    """Tasks allowed without a cgroup: with ``memory_mb`` each, this bounds the total."""
    nofile: int = 128
    fsize_mb: int = 32
    """Largest file the submission may write, its captured output included."""
    tmpfs_mb: int = 64
    """Size of the sandbox's /tmp (a tmpfs inside the sandbox)."""
    work_mb: int = 64
    """Size of the sandbox's work dir /sandbox (a tmpfs inside the sandbox)."""
    log_bytes: int = 4000

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> SandboxLimits:
        """Limits overridden by a puzzle's ``[verify]`` keys (``memory_mb``, ``timeout_s``, ``cpu_seconds``)."""
        config = config or {}
        base = cls()
        return cls(
            memory_mb=int(config.get("memory_mb", base.memory_mb)),
            cpu_seconds=int(config.get("cpu_seconds", base.cpu_seconds)),
            wall_seconds=float(config.get("timeout_s", base.wall_seconds)),
        )


def count_tasks(uid: int) -> int:
    """Processes and threads of ``uid``: what RLIMIT_NPROC counts."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
    return count


def set_limits(limits: SandboxLimits, nproc: int) -> None:
    """The child's rlimits, set between fork and exec."""
    # Generous while torch imports (a CUDA build maps ~3.8 GB); the runner lowers it to what it
    # then maps plus ``memory_mb`` before it says ready, before any submission code runs.
    mem = (limits.memory_mb + IMPORT_ADDRESS_SPACE_MB) << 20
    for res, value in (
        (resource.RLIMIT_AS, (mem, mem)),
        (resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 2)),
        (resource.RLIMIT_NPROC, (nproc, nproc)),
        (resource.RLIMIT_NOFILE, (limits.nofile, limits.nofile)),
        (resource.RLIMIT_FSIZE, (limits.fsize_mb << 20, limits.fsize_mb << 20)),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
        resource.setrlimit(res, value)


def describe_exit(code: int | None, limits: SandboxLimits, *, oom: bool = False) -> str:
    """A user-facing sentence for a sandbox that ended without an answer."""
    if oom:
        return (
            f"the submission used more than {limits.memory_mb} MB of memory in total "
            "(all its processes and files together) and was stopped"
        )
    if code is None:
        return "the sandbox did not report an exit status"
    sig = -code if code < 0 else (code - 128 if code > 128 else 0)
    if sig == signal.SIGXCPU:
        return f"the submission used more than {limits.cpu_seconds} CPU seconds and was stopped"
    if sig == signal.SIGXFSZ:
        return (
            f"the submission wrote more than {limits.fsize_mb} MB (output or files) and was stopped"
        )
    if sig == signal.SIGKILL:
        return "the submission was killed (memory, CPU or process limit)"
    if sig:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return f"the submission crashed ({name})"
    if code == 0:
        return "the submission exited before finishing (sys.exit / os._exit?) and left no result"
    return f"the submission exited early with status {code} and left no result"


def describe_limits(limits: SandboxLimits | None = None) -> str:
    """One sentence for logs and health checks: how this worker bounds a whole submission."""
    limits = limits or SandboxLimits()
    layout, why = cgroups.probe()
    tmpfs = (
        f"work dir {limits.work_mb} MB and /tmp {limits.tmpfs_mb} MB on tmpfs inside the sandbox"
    )
    if layout is not None:
        return (
            f"{limits.memory_mb} MB of memory and {limits.nproc} tasks per sandbox in total "
            f"({why}); {tmpfs}"
        )
    return (
        f"fallback without a cgroup ({why}): at most {limits.fallback_nproc} tasks of "
        f"{limits.memory_mb} MB address space each, so at most "
        f"{limits.fallback_nproc * limits.memory_mb} MB per sandbox; {tmpfs}"
    )
