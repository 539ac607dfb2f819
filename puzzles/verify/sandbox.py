"""Run untrusted submission code in a bubblewrap sandbox, one fresh sandbox per submission.

The child (``_runner.py``) sees the interpreter and its libraries read-only, a private work dir and
tmpfs, no network, its own pid/ipc/uts namespaces, a new session (no TIOCSTI into our terminal), and
runs as an unprivileged uid of its own (so ``RLIMIT_NPROC`` contains fork bombs even when the worker
is root). Address space, CPU seconds, processes, open files and file size are rlimited; the wall
clock is enforced here by killing the whole process group, and ``--die-with-parent`` plus the pid
namespace take every descendant (double-forked daemons included) down with it. Data crosses as
files: safetensors in, safetensors + JSON out, read back without following symlinks and size-capped.

A :class:`SandboxPool` keeps a few sandboxes started ahead of time (python up, torch imported) so a
submission does not wait for interpreter start-up; each one still serves exactly one submission.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUNNER = Path(__file__).with_name("_runner.py")
SANDBOX_HOME = "/sandbox"
MAX_RESULT_JSON_BYTES = 1 << 20
_UID_BASE = 200_000
IMPORT_ADDRESS_SPACE_MB = 16_384
"""RLIMIT_AS while the runner imports torch, before it lowers the limit to base + ``memory_mb``
(no submission code runs under this one)."""


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces, and unsandboxed runs were not allowed."""


class SandboxError(RuntimeError):
    """The sandbox itself failed to start (not the submission's fault)."""


@dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int = 1536
    """Address space the submission may add to the interpreter with torch imported (RLIMIT_AS is
    set to that base plus this once torch is in: the base is ~0.6 GB with a CPU build of torch,
    ~3.8 GB with a CUDA build). 1536 keeps the ~1.4 GB a submission had under the former 2 GB
    total on a CPU worker."""
    cpu_seconds: int = 60
    wall_seconds: float = 30.0
    """Wall clock for one job, counted from handing the job over (not from interpreter start)."""
    start_seconds: float = 60.0
    nproc: int = 64
    nofile: int = 128
    fsize_mb: int = 32
    tmpfs_mb: int = 64
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


@dataclass
class SandboxOutcome:
    """What came back from one run. ``failure`` is a user-facing sentence when the run broke down."""

    failure: str | None
    result: dict[str, Any] = field(default_factory=dict)
    predictions: Any = None  # torch.LongTensor [n, k] when predict produced valid output
    causal: Any = None  # format v2: the runner's tensors (variable values, counterfactual answers)
    log_tail: str = ""
    exit_code: int | None = None
    wall_seconds: float = 0.0
    sandboxed: bool = True


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _count_processes(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += 1
    return count


_uid_lock = threading.Lock()
_uids_issued = 0


def _next_uid() -> int:
    # A uid of its own per sandbox: RLIMIT_NPROC counts per uid, so concurrent sandboxes
    # (and a fork bomb in one of them) cannot starve each other.
    global _uids_issued
    with _uid_lock:
        n = _uids_issued
        _uids_issued += 1
    return sandbox_uid(n)


def sandbox_uid(n: int) -> int:
    """The uid of this process's n-th sandbox (tests look for processes left running as it)."""
    return _UID_BASE + (os.getpid() % 1000) * 1000 + n % 1000


def uids_issued() -> int:
    return _uids_issued


def _set_limits(limits: SandboxLimits, nice: int = 0) -> None:
    if nice:
        os.nice(nice)
    mem = (limits.memory_mb + IMPORT_ADDRESS_SPACE_MB) << 20
    for res, value in (
        (resource.RLIMIT_AS, (mem, mem)),
        (resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 2)),
        (resource.RLIMIT_NPROC, (limits.nproc, limits.nproc)),
        (resource.RLIMIT_NOFILE, (limits.nofile, limits.nofile)),
        (resource.RLIMIT_FSIZE, (limits.fsize_mb << 20, limits.fsize_mb << 20)),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
        resource.setrlimit(res, value)


def _env() -> dict[str, str]:
    """A scrubbed environment: nothing of ours (no CIRCUITBOARD_*, no tokens, no DB URL)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": SANDBOX_HOME,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "CUDA_VISIBLE_DEVICES": "",  # predict runs on the CPU; the worker's GPU is not its to use
    }


def _read_regular_file(dir_fd: int, name: str, max_bytes: int) -> bytes | None:
    """Read ``name`` under ``dir_fd`` without following symlinks; None if absent or not a regular file."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            return None
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []


def _kill_group(proc: subprocess.Popen) -> None:
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


def _describe_exit(code: int | None, limits: SandboxLimits) -> str:
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


class Sandbox:
    """One child process, started now (importing torch in the background), used for one job."""

    def __init__(
        self, limits: SandboxLimits | None = None, *, use_bwrap: bool = True, nice: int = 0
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
        self.workdir = Path(tempfile.mkdtemp(prefix="cb-sandbox-"))
        self._private = Path(tempfile.mkdtemp(prefix="cb-sandbox-log-"))
        self._log = open(self._private / "log", "w+b")  # noqa: SIM115 - closed in close()
        as_root = os.geteuid() == 0
        self.uid = _next_uid() if as_root and use_bwrap else None
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)
        os.chmod(self.workdir, 0o700)
        python = sys.executable
        if use_bwrap:
            argv = self._bwrap_argv(bwrap, python)  # type: ignore[arg-type]
            cwd = None
        else:
            argv = [python, "-I", "-B", str(RUNNER), str(self.limits.memory_mb)]
            cwd = str(self.workdir)
        limits_ = self.limits
        if self.uid is None:
            # Not root: RLIMIT_NPROC counts every process of the caller's uid, so the budget
            # is on top of what the user already runs.
            limits_ = dataclasses.replace(
                limits_, nproc=limits_.nproc + _count_processes(os.getuid())
            )
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=cwd,
            env=_env(),
            start_new_session=True,
            preexec_fn=lambda: _set_limits(limits_, nice),
            close_fds=True,
        )
        self._ready = False
        self._finalizer = weakref.finalize(self, _cleanup, self.proc, self.workdir, self._private)

    def _bwrap_argv(self, bwrap: str, python: str) -> list[str]:
        args = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--hostname", "sandbox", "--new-session"]
        args += ["--die-with-parent"]
        if self.uid is None:
            # Unprivileged caller: a user namespace maps it to nobody inside.
            args += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
        # The private /tmp first: binds below may live under /tmp (a checkout or venv there) and a
        # tmpfs mounted after them would hide the interpreter.
        args += ["--perms", "1777", "--size", str(self.limits.tmpfs_mb << 20), "--tmpfs", "/tmp"]
        args += ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        # The interpreter and its libraries, read-only; nothing else of the host (no repo data,
        # no weights, no database, no /etc, no /home).
        binds = [(str(RUNNER), "/opt/circuitboard/runner.py")]
        for prefix in sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}):
            if prefix != "/usr" and not prefix.startswith("/usr/"):
                binds.append((prefix, prefix))
        made: set[str] = set()
        for _, dest in binds:
            # parents made world-traversable (bwrap would create them 0700 as root)
            parent = Path(dest).parent
            for d in reversed([parent, *parent.parents]):
                if str(d) != "/" and str(d) not in made:
                    made.add(str(d))
                    args += ["--perms", "0755", "--dir", str(d)]
        for src, dest in binds:
            args += ["--ro-bind", src, dest]
        args += ["--bind", str(self.workdir), SANDBOX_HOME, "--proc", "/proc", "--dev", "/dev"]
        args += ["--chdir", SANDBOX_HOME, "--clearenv"]
        for key, value in _env().items():
            args += ["--setenv", key, value]
        args += ["--"]
        if self.uid is not None:
            # Root caller: bwrap sets up the mounts, then the code runs as a uid of its own with
            # every capability gone (RLIMIT_NPROC does not apply to root).
            args += ["/usr/bin/setpriv", f"--reuid={self.uid}", f"--regid={self.uid}"]
            args += ["--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--nnp"]
            args += ["--pdeathsig=KILL"]
        args += [python, "-I", "-B", "/opt/circuitboard/runner.py", str(self.limits.memory_mb)]
        return args

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the child has imported torch (or raise SandboxError/SandboxUnavailable)."""
        if self._ready:
            return
        deadline = time.monotonic() + (timeout or self.limits.start_seconds)
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        while b"\n" not in buf:
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
            log = self.log_tail()
            self.close()
            if "namespace" in log or "bwrap" in log:
                raise SandboxUnavailable(f"bubblewrap could not create the sandbox: {log.strip()}")
            raise SandboxError(f"the sandbox failed to start: {log.strip()[-500:]}")
        self._ready = True

    def log_tail(self) -> str:
        try:
            size = os.fstat(self._log.fileno()).st_size
            self._log.seek(max(0, size - self.limits.log_bytes))
            return self._log.read(self.limits.log_bytes).decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def _put(self, name: str, data: bytes) -> str:
        path = self.workdir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return name

    def run(
        self,
        source: str,
        *,
        tokens: Any = None,
        k: int = 1,
        n_classes: int = 2,
        wall_seconds: float | None = None,
        causal: Any = None,
    ) -> SandboxOutcome:
        """Execute ``source`` once: collect CIRCUIT and, given ``tokens``, ``predict(tokens)``;
        given ``causal`` (a :class:`puzzles.verify.causal_check.CausalJob`), the v2 counterfactuals."""
        if self._used:
            raise RuntimeError("a sandbox runs exactly one submission")
        self._used = True
        try:
            return self._run(
                source, tokens, k, n_classes, wall_seconds or self.limits.wall_seconds, causal
            )
        finally:
            self.close()

    def _run(self, source, tokens, k, n_classes, wall, causal=None) -> SandboxOutcome:
        self.wait_ready()
        job: dict[str, Any] = {"source": self._put("submission.py", source.encode("utf-8"))}
        if causal is not None:
            job["causal"] = {
                **causal.spec,
                "inputs": self._put("causal.safetensors", causal.inputs),
            }
        if tokens is not None:
            from safetensors.torch import save

            job["tokens"] = self._put("inputs.safetensors", save({"tokens": tokens.contiguous()}))
            job.update(k=int(k), n_classes=int(n_classes))
        started = time.monotonic()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        timed_out = False
        try:
            code = self.proc.wait(timeout=wall)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(self.proc)
            code = self.proc.returncode
        elapsed = time.monotonic() - started
        _kill_group(self.proc)  # anything it left behind goes with the group / pid namespace
        outcome = SandboxOutcome(
            failure=None,
            log_tail=self.log_tail(),
            exit_code=code,
            wall_seconds=elapsed,
            sandboxed=self.sandboxed,
        )
        if timed_out:
            outcome.failure = f"the submission did not finish within {wall:g} s and was stopped"
            return outcome
        result = self._read_result()
        if result is None:
            outcome.failure = _describe_exit(code, self.limits)
            return outcome
        outcome.result = result
        status = result.get("status")
        if status == "memory":
            outcome.failure = (
                f"{result.get('message', 'out of memory')} (limit {self.limits.memory_mb} MB)"
            )
        elif status != "ok":
            outcome.failure = str(result.get("message", "the submission failed"))[:4000]
        elif result.get("has_predict") and "predict" not in result.get("errors", {}):
            outcome.predictions = self._read_predictions(
                tokens.shape[0] if tokens is not None else 0, k
            )
            if outcome.predictions is None:
                result.setdefault("errors", {})["predict"] = (
                    "predict's output could not be read back (missing, malformed or tampered with)"
                )
        if causal is not None and status == "ok" and "hypothesis" not in result["errors"]:
            outcome.causal = self._read_tensors("causal.safetensors", causal.max_bytes)
            error = None if outcome.causal is None else causal.check(outcome.causal)
            if outcome.causal is None or error:
                outcome.causal = None
                result["errors"]["hypothesis"] = error or (
                    "the hypothesis' output could not be read back (missing or malformed)"
                )
        return outcome

    def _read_tensors(self, name: str, max_bytes: int) -> dict[str, Any] | None:
        """A safetensors file the child left in out/ (size-capped, no links), or None."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        out_fd = self._out_dir_fd()
        if out_fd is None:
            return None
        try:
            raw = _read_regular_file(out_fd, name, max_bytes)
        finally:
            os.close(out_fd)
        if raw is None:
            return None
        try:
            return load(raw)
        except (SafetensorError, ValueError, RuntimeError, OverflowError):
            return None

    def _out_dir_fd(self) -> int | None:
        try:
            work_fd = os.open(self.workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            return os.open("out", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=work_fd)
        except OSError:
            return None
        finally:
            os.close(work_fd)

    def _read_result(self) -> dict[str, Any] | None:
        out_fd = self._out_dir_fd()
        if out_fd is None:
            return None
        try:
            raw = _read_regular_file(out_fd, "result.json", MAX_RESULT_JSON_BYTES)
        finally:
            os.close(out_fd)
        if raw is None:
            return None
        try:
            result = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        if not isinstance(result, dict):
            return None
        if not isinstance(result.get("errors", {}), dict):
            result["errors"] = {}
        result["errors"] = {
            str(key): str(value)[:4000] for key, value in result.get("errors", {}).items()
        }
        circuit = result.get("circuit")
        if circuit is not None and not (
            isinstance(circuit, list) and all(isinstance(c, str) and len(c) <= 64 for c in circuit)
        ):
            result["circuit"] = None
            result["errors"]["circuit"] = "CIRCUIT must be a list of strings"
        return result

    def _read_predictions(self, n: int, k: int) -> Any:
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load

        out_fd = self._out_dir_fd()
        if out_fd is None:
            return None
        try:
            raw = _read_regular_file(out_fd, "predictions.safetensors", n * k * 8 + 4096)
        finally:
            os.close(out_fd)
        if raw is None:
            return None
        try:
            tensors = load(raw)
        except (SafetensorError, ValueError, RuntimeError, OverflowError):
            return None
        predictions = tensors.get("predictions")
        if (
            set(tensors) != {"predictions"}
            or predictions is None
            or predictions.dtype != torch.int64
            or tuple(predictions.shape) != (n, k)
        ):
            return None
        return predictions

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._finalizer()
        with contextlib.suppress(Exception):
            self._log.close()


def _cleanup(proc: subprocess.Popen, workdir: Path, private: Path) -> None:
    _kill_group(proc)
    for stream in (proc.stdin, proc.stdout):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.close()
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(private, ignore_errors=True)


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
    tokens: Any = None,
    k: int = 1,
    n_classes: int = 2,
    limits: SandboxLimits | None = None,
    sandbox: bool = True,
    pool: SandboxPool | None = None,
) -> SandboxOutcome:
    """Run a submission once in a fresh sandbox (from ``pool`` when given)."""
    box = pool.acquire() if pool is not None and sandbox else Sandbox(limits, use_bwrap=sandbox)
    return box.run(source, tokens=tokens, k=k, n_classes=n_classes)
