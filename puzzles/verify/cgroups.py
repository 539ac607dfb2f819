"""One memory and process limit for a whole sandbox: a cgroup leaf per sandbox.

Rlimits count per process, so a submission that forks multiplies its memory; a cgroup counts
everything the sandbox runs (every process, thread and tmpfs page) against one budget.
Two layouts are supported:

- cgroup v2 with the ``memory`` and ``pids`` controllers delegated to a directory the worker can
  write: ``CIRCUITBOARD_SANDBOX_CGROUP`` when set (a delegated subtree, e.g. systemd
  ``Delegate=yes`` or a container started with ``--cgroupns=private`` and a writable cgroupfs),
  else the worker's own cgroup;
- cgroup v1 (``memory`` and ``pids`` hierarchies), when they are writable (root on a v1 host).

Where neither works (an unprivileged container, the usual Docker case), :func:`probe` says why and
the sandbox falls back to per-process limits with a small process count (see ``sandbox.py``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
ENV_BASE = "CIRCUITBOARD_SANDBOX_CGROUP"
_counter = itertools.count()


@dataclass(frozen=True)
class Layout:
    """Where sandbox leaves are created: one base directory (v2) or one per controller (v1)."""

    version: int
    bases: tuple[Path, ...]


class CgroupLeaf:
    """A cgroup made for one sandbox; the sandbox's first process joins it before exec."""

    def __init__(self, layout: Layout, *, memory_bytes: int, pids: int, tag: str) -> None:
        self.layout = layout
        name = f"cb-sandbox-{tag}-{os.getpid()}-{next(_counter)}"
        self.dirs = tuple(base / name for base in layout.bases)
        made: list[Path] = []
        try:
            for d in self.dirs:
                d.mkdir(mode=0o755)
                made.append(d)
            if layout.version == 2:
                (leaf,) = self.dirs
                _write(leaf / "memory.max", memory_bytes)
                if (leaf / "memory.swap.max").exists():
                    _write(leaf / "memory.swap.max", 0)
                _write(leaf / "pids.max", pids)
            else:
                memory, pids_dir = self.dirs
                _write(memory / "memory.limit_in_bytes", memory_bytes)
                if (memory / "memory.memsw.limit_in_bytes").exists():
                    _write(memory / "memory.memsw.limit_in_bytes", memory_bytes)
                _write(pids_dir / "pids.max", pids)
        except OSError:
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise
        # precomputed so join() (run between fork and exec) only opens and writes
        self._procs = [str(d / "cgroup.procs") for d in self.dirs]

    def join(self) -> None:
        """Move the calling process into the leaf (called in the child before exec)."""
        pid = str(os.getpid()).encode()
        for path in self._procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def pids(self) -> list[int]:
        try:
            text = (self.dirs[0] / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(x) for x in text.split()]

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this sandbox for exceeding the memory limit."""
        name = "memory.events" if self.layout.version == 2 else "memory.oom_control"
        try:
            lines = (self.dirs[0] / name).read_text().splitlines()
        except OSError:
            return False
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
        return False

    def peak_bytes(self) -> int | None:
        """The most memory the sandbox used at once (None where the kernel does not say)."""
        name = "memory.peak" if self.layout.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.dirs[0] / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill_all(self) -> None:
        """SIGKILL everything left in the leaf (the pid namespace usually took them already)."""
        kill_file = self.dirs[0] / "cgroup.kill"
        if self.layout.version == 2 and kill_file.exists():
            with contextlib.suppress(OSError):
                _write(kill_file, 1)
            return
        for _ in range(100):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> bool:
        """Kill what is left and remove the leaf; False (and the leaf stays) if it would not go."""
        self.kill_all()
        removed = True
        for d in self.dirs:
            for attempt in range(200):  # the kernel frees a killed process's cgroup asynchronously
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if attempt == 199:
                        removed = False
                    time.sleep(0.01)
        return removed


def _write(path: Path, value: object) -> None:
    with open(path, "w") as fh:
        fh.write(str(value))


def _own_cgroups(proc_cgroup: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as {controller: path}; the v2 entry is under ``""``."""
    found: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            found[controller] = parts[2]
    return found


def _v1_mounts(mountinfo: str) -> dict[str, tuple[Path, str]]:
    """{controller: (mount point, root of the mount)} for the v1 hierarchies."""
    mounts: dict[str, tuple[Path, str]] = {}
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(tail) < 3 or tail[0] != "cgroup" or len(fields) < 5:
            continue
        for option in tail[2].split(","):
            mounts.setdefault(option, (Path(fields[4]), fields[3]))
    return mounts


def _under(mount: Path, mount_root: str, path: str) -> Path:
    rel = path
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root + "/")):
        rel = path[len(mount_root) :]
    return mount / rel.lstrip("/")


def find_layout(
    *,
    root: Path = CGROUP_ROOT,
    proc_cgroup: str | None = None,
    mountinfo: str | None = None,
    base: str | None = None,
) -> tuple[Layout | None, str]:
    """Where this process can make sandbox leaves, or None and the reason it cannot."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError as exc:
            return None, f"cannot read /proc/self/cgroup ({exc.strerror})"
    own = _own_cgroups(proc_cgroup)
    base = base if base is not None else os.environ.get(ENV_BASE)
    if (root / "cgroup.controllers").exists():
        return _v2_layout(Path(base) if base else root / own.get("", "/").lstrip("/"))
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError as exc:
            return None, f"cannot read /proc/self/mountinfo ({exc.strerror})"
    return _v1_layout(own, mountinfo)


def _v2_layout(v2_base: Path) -> tuple[Layout | None, str]:
    try:
        enabled = set((v2_base / "cgroup.subtree_control").read_text().split())
        if not {"memory", "pids"} <= enabled:
            # only possible where the base holds no process of its own (a delegated subtree)
            _write(v2_base / "cgroup.subtree_control", "+memory +pids")
        if os.access(v2_base, os.W_OK):
            return Layout(2, (v2_base,)), f"cgroup v2 under {v2_base}"
        return None, f"cgroup v2: {v2_base} is not writable"
    except OSError as exc:
        return None, (
            f"cgroup v2: cannot enable the memory and pids controllers in {v2_base} "
            f"({exc.strerror}; delegate a subtree and set {ENV_BASE})"
        )


def _v1_layout(own: dict[str, str], mountinfo: str) -> tuple[Layout | None, str]:
    mounts = _v1_mounts(mountinfo)
    if "memory" not in mounts or "pids" not in mounts:
        return None, "no cgroup v2 and no cgroup v1 memory and pids hierarchies"
    dirs = []
    for controller in ("memory", "pids"):
        mount, mount_root = mounts[controller]
        dirs.append(_under(mount, mount_root, own.get(controller, "/")))
    writable = [d for d in dirs if d.is_dir() and os.access(d, os.W_OK)]
    if len(writable) == 2:
        return Layout(1, tuple(dirs)), f"cgroup v1 under {dirs[0]} and {dirs[1]}"
    return None, "cgroup v1: the memory and pids hierarchies are not writable"


_probed: tuple[Layout | None, str] | None = None
_probe_lock = threading.Lock()


def probe(*, memory_bytes: int = 256 << 20, pids: int = 16) -> tuple[Layout | None, str]:
    """The layout this process uses (made and removed once as a test), cached; and a sentence why."""
    global _probed
    with _probe_lock:
        if _probed is None:
            layout, why = find_layout()
            if layout is not None:
                try:
                    CgroupLeaf(layout, memory_bytes=memory_bytes, pids=pids, tag="probe").remove()
                except OSError as exc:
                    layout, why = None, f"{why}, but a leaf cannot be made there ({exc.strerror})"
            _probed = (layout, why)
        return _probed


def reset_probe() -> None:
    """Forget the cached probe (tests, or after the environment changed)."""
    global _probed
    with _probe_lock:
        _probed = None
