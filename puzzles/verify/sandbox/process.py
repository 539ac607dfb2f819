"""One sandbox: the child process started ahead (torch imported), handed one job, then killed with
everything it started, its cgroup, uid claim and work dir released."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import IO, TYPE_CHECKING

from puzzles.verify import cgroups
from puzzles.verify.sandbox import protocol
from puzzles.verify.sandbox.bwrap import (
    RUNNER,
    RUNNER_IN_SANDBOX,
    bwrap_argv,
    bwrap_path,
    sandbox_env,
)
from puzzles.verify.sandbox.errors import SandboxError, SandboxUnavailable
from puzzles.verify.sandbox.limits import (
    INTERPRETER_MB,
    START_SLACK,
    SandboxLimits,
    count_tasks,
    set_limits,
)
from puzzles.verify.sandbox.protocol import SandboxOutcome
from puzzles.verify.sandbox.uids import UidClaim

if TYPE_CHECKING:
    import torch

    from puzzles.verify.causal_check import CausalJob

log = logging.getLogger(__name__)


class Sandbox:
    """One child process, started now (importing torch in the background), used for one job."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        use_bwrap: bool = True,
        nice: int = 0,
        command: list[str] | None = None,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.sandboxed = use_bwrap
        bwrap = bwrap_path()
        if use_bwrap and bwrap is None:
            raise SandboxUnavailable(
                "bubblewrap (bwrap) is not installed, so submission code cannot be run safely; "
                "install it (apt-get install bubblewrap) or pass --unsafe-no-sandbox for your own code"
            )
        self._used = False
        self._closed = False
        self._ready = False
        self.uid: int | None = None
        self.cgroup: cgroups.CgroupLeaf | None = None
        self.workdir: Path | None = None
        self._claim: UidClaim | None = None
        self._log: IO[bytes] = os.fdopen(os.memfd_create("cb-sandbox-log"), "w+b")  # capped
        try:
            self.proc = self._start(bwrap if use_bwrap else None, nice, command)
        except BaseException:
            self._release()
            raise
        self._finalizer = weakref.finalize(
            self, _cleanup, self.proc, self.workdir, self.cgroup, self._claim
        )

    def _start(
        self, bwrap: str | None, nice: int, command: list[str] | None
    ) -> subprocess.Popen[bytes]:
        limits = self.limits
        budget = str(limits.memory_mb)
        if bwrap is not None:
            self._confine()
            runner = command or [sys.executable, "-I", "-B", RUNNER_IN_SANDBOX, budget]
            argv = bwrap_argv(bwrap, runner, uid=self.uid, limits=limits)
            cwd = None
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="cb-sandbox-"))
            argv = [sys.executable, "-I", "-B", str(RUNNER), budget] if command is None else command
            cwd = str(self.workdir)
        self._shared_uid = self.cgroup is None and self.uid is None
        nproc = self._task_budget(sandboxed=bwrap is not None)
        leaf = self.cgroup

        def preexec() -> None:
            if leaf is not None:
                leaf.join()  # before dropping privileges: everything it starts is counted
            if nice:
                os.nice(nice)
            set_limits(limits, nproc)

        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=cwd,
            env=sandbox_env(),
            start_new_session=True,
            preexec_fn=preexec,
            close_fds=True,
        )

    def _confine(self) -> None:
        """A uid of its own (root worker) and a cgroup leaf where the worker can make one."""
        limits = self.limits
        if os.geteuid() == 0:
            self._claim = UidClaim()
            self.uid = self._claim.uid
        layout, _ = cgroups.probe()
        if layout is None:
            return
        try:
            self.cgroup = cgroups.CgroupLeaf(
                layout,
                memory_bytes=(limits.memory_mb + INTERPRETER_MB) << 20,
                pids=limits.nproc,
                tag="job",
            )
        except OSError as exc:
            log.warning("no cgroup for this sandbox (%s); per-process limits apply", exc)

    def _task_budget(self, *, sandboxed: bool) -> int:
        limits = self.limits
        if self.cgroup is not None:
            return limits.nproc
        nproc = limits.fallback_nproc if sandboxed else limits.nproc
        if self._shared_uid:
            # RLIMIT_NPROC counts every task of the caller's uid: the budget comes on top,
            # with room for sandboxes starting beside this one until the job is handed over
            nproc += count_tasks(os.getuid()) + START_SLACK
        return nproc

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the child has imported torch (or raise SandboxError/SandboxUnavailable)."""
        if self._ready:
            return
        deadline = time.monotonic() + (timeout or self.limits.start_seconds)
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        while b"\n" not in buf and len(buf) < 4096:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise SandboxError("the sandbox did not start in time (machine overloaded?)")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 64)
                if not chunk:
                    break
                buf += chunk
        if buf.strip() != b"ready":
            text = self.log_tail()
            self.close()
            if "namespace" in text or "bwrap" in text or "setpriv" in text:
                raise SandboxUnavailable(f"bubblewrap could not create the sandbox: {text.strip()}")
            raise SandboxError(f"the sandbox failed to start: {text.strip()[-500:]}")
        self._ready = True

    def log_tail(self) -> str:
        try:
            size = os.fstat(self._log.fileno()).st_size
            self._log.seek(max(0, size - self.limits.log_bytes))
            return self._log.read(self.limits.log_bytes).decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def run(
        self,
        source: str,
        *,
        tokens: torch.Tensor | None = None,
        k: int = 1,
        n_classes: int = 2,
        wall_seconds: float | None = None,
        causal: CausalJob | None = None,
    ) -> SandboxOutcome:
        """Execute ``source`` once: collect CIRCUIT and, given ``tokens``, ``predict(tokens)``;
        given ``causal`` (a :class:`puzzles.verify.causal_check.CausalJob`), the v2 counterfactuals."""
        if self._used:
            raise RuntimeError("a sandbox runs exactly one submission")
        self._used = True
        try:
            return self._run(
                source,
                tokens=tokens,
                k=k,
                n_classes=n_classes,
                wall=wall_seconds or self.limits.wall_seconds,
                causal=causal,
            )
        finally:
            self.close()

    def send(self, data: bytes, deadline: float) -> None:
        """Hand the job over on stdin (then closed) without ever blocking past the deadline."""
        assert self.proc.stdin is not None
        try:
            protocol.send(self.proc.stdin.fileno(), data, deadline)
        finally:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def receive(self, cap: int, deadline: float) -> tuple[bytes, bool, bool]:
        """The control pipe until it closes: (data up to ``cap``, overflowed, timed out)."""
        assert self.proc.stdout is not None
        return protocol.receive(self.proc.stdout.fileno(), cap, deadline)

    def _tighten_tasks(self) -> None:
        """Shared uid: the budget becomes what runs now plus ``fallback_nproc`` for the job."""
        budget = count_tasks(os.getuid()) + self.limits.fallback_nproc
        pending, seen = [self.proc.pid], set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            pending += _children(pid)
            with contextlib.suppress(OSError):
                resource.prlimit(pid, resource.RLIMIT_NPROC, (budget, budget))

    def _run(
        self,
        source: str,
        *,
        tokens: torch.Tensor | None,
        k: int,
        n_classes: int,
        wall: float,
        causal: CausalJob | None,
    ) -> SandboxOutcome:
        self.wait_ready()
        if self._shared_uid and self.sandboxed:
            self._tighten_tasks()
        job, cap = protocol.encode_job(
            source, tokens=tokens, k=k, n_classes=n_classes, causal=causal
        )
        started = time.monotonic()
        raw, overflow, timed_out, code = self._exchange(job, cap, started + wall)
        elapsed = time.monotonic() - started
        _kill_group(self.proc)  # anything it left behind goes with the pid namespace
        oom = self.cgroup is not None and self.cgroup.oom_killed()
        outcome = SandboxOutcome(
            failure=None,
            log_tail=self.log_tail(),
            exit_code=code,
            wall_seconds=elapsed,
            sandboxed=self.sandboxed,
            memory_peak_bytes=self.cgroup.peak_bytes() if self.cgroup is not None else None,
        )
        if timed_out:
            outcome.failure = f"the submission did not finish within {wall:g} s and was stopped"
            return outcome
        if overflow:
            outcome.failure = (
                "the submission sent more than the verifier accepts on its result channel "
                f"({cap // 1024} kB) and was refused"
            )
            return outcome
        n = 0 if tokens is None else int(tokens.shape[0])
        return protocol.read_answer(
            outcome, raw, limits=self.limits, oom=oom, n=n, k=int(k), causal=causal
        )

    def _exchange(
        self, job: bytes, cap: int, deadline: float
    ) -> tuple[bytes, bool, bool, int | None]:
        """Send the job, read the answer, wait for the exit: (answer, overflowed, timed out, code)."""
        self.send(job, deadline)
        raw, overflow, timed_out = self.receive(cap, deadline)
        if timed_out:
            _kill_group(self.proc)
            return raw, overflow, True, self.proc.returncode
        try:
            code = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return raw, overflow, True, None
        return raw, overflow, False, code

    def close(self) -> None:
        """Kill the sandbox and free what it held; never raises (cleanup must not crash a job)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._finalizer()
        except Exception:  # noqa: BLE001 - logged; a leftover is not the submission's verdict
            log.exception("sandbox cleanup failed")
        with contextlib.suppress(Exception):
            self._log.close()

    def _release(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()
        if self._claim is not None:
            self._claim.release()
        if self.workdir is not None:
            remove_tree(self.workdir)
        with contextlib.suppress(Exception):
            self._log.close()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the sandbox: bwrap's pid-1 child first (the kernel then kills its whole pid namespace
    and bwrap exits and is reaped here, leaving no orphan), then bwrap's process group."""
    if proc.poll() is None:
        for child in _children(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


def remove_tree(path: Path) -> None:
    """Delete a directory tree of any depth without recursion (``rm -rf`` walks it with fts);
    never raises: a leftover is logged, not a crash."""
    if not os.path.lexists(path):
        return
    try:
        subprocess.run(
            ["rm", "-rf", "--one-file-system", "--", str(path)],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not remove %s: %s", path, exc)
    if os.path.lexists(path):
        log.warning("could not remove %s completely", path)


def _cleanup(
    proc: subprocess.Popen[bytes],
    workdir: Path | None,
    leaf: cgroups.CgroupLeaf | None,
    claim: UidClaim | None,
) -> None:
    _kill_group(proc)
    for stream in (proc.stdin, proc.stdout):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.close()
    if leaf is not None and not leaf.remove():
        log.warning("sandbox cgroup %s could not be removed", leaf.dirs[0])
    if claim is not None:
        claim.release()  # only now: every process that ran as this uid is gone
    if workdir is not None:
        remove_tree(workdir)
