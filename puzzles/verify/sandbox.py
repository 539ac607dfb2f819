"""Run untrusted submission code in a bubblewrap sandbox, one fresh sandbox per submission.

The child (``_runner.py``) sees the interpreter and its libraries read-only and nothing else of the
host: its work dir (``/sandbox``) and ``/tmp`` are size-limited tmpfs mounts inside the sandbox
(never the worker's disk), ``/``, ``/dev`` and ``/dev/shm`` are read-only, there is no network, it
has its own user/pid/ipc/uts namespaces with further user namespaces disabled, a new session (no
TIOCSTI into our terminal), and it runs as an unprivileged uid. A root worker gives every running
sandbox a uid of its own (claimed with a lock, so concurrent workers never share one) and starts
bubblewrap already as that uid; an unprivileged worker's sandboxes run as the worker's uid.

Limits hold for the whole submission, whatever it forks: where the worker can make a cgroup
(``cgroups.py``: v2 delegated, or v1 as root) one leaf per sandbox caps memory (every process,
thread and tmpfs page together) and the number of tasks. Otherwise the documented fallback bounds
the total by rlimits: ``memory_mb`` of address space per process and at most ``fallback_nproc``
tasks, so the sandbox holds at most ``memory_mb * fallback_nproc`` plus its two tmpfs mounts. CPU
seconds, open files and file size are rlimited too; the wall clock is enforced here by killing the
sandbox, and ``--die-with-parent`` plus the pid namespace take every descendant down with it.

Data crosses as bytes on pipes: the job (source, tokens as safetensors) on stdin, the answer
(JSON, predictions as safetensors) on a control pipe, read with a size cap and validated field by
field; the submission's output goes to an in-memory file capped by ``RLIMIT_FSIZE``.

A :class:`SandboxPool` keeps a few sandboxes started ahead of time (python up, torch imported) so a
submission does not wait for interpreter start-up; each one still serves exactly one submission.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import random
import resource
import select
import signal
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

from puzzles.verify import cgroups

log = logging.getLogger(__name__)

RUNNER = Path(__file__).with_name("_runner.py")
SANDBOX_HOME = "/sandbox"
MAX_RESULT_BYTES = 1 << 20
"""The most the control pipe may carry besides the predictions; more is refused as tampering."""
MAX_MESSAGE_CHARS = 4000
"""Any one message from the sandbox (an error, a traceback) is cut to this length."""
MAX_CIRCUIT_ITEMS = 2000
MAX_CIRCUIT_ITEM_CHARS = 64
_RESULT_STATUSES = ("ok", "memory", "load_error")
_UID_BASE = 200_000
_UID_COUNT = 50_000
UID_DIR_ENV = "CIRCUITBOARD_SANDBOX_UID_DIR"
_START_SLACK = 16
"""Tasks other sandboxes of a shared uid may add while one starts (its limit is lowered after)."""
SETPRIV = "/usr/bin/setpriv"
INTERPRETER_MB = 512
"""Memory a sandbox's cgroup allows on top of ``memory_mb`` for the interpreter with torch loaded
(resident ~150 MB with a CPU build), so ``memory_mb`` is what the submission itself may use."""
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
    memory_peak_bytes: int | None = None
    """The sandbox's peak memory as its cgroup measured it (None without a cgroup)."""


def bwrap_path() -> str | None:
    import shutil

    return shutil.which("bwrap")


_bwrap_features: dict[str, bool] = {}


def _bwrap_supports(bwrap: str, option: str) -> bool:
    key = f"{bwrap}\0{option}"
    if key not in _bwrap_features:
        try:
            text = subprocess.run(
                [bwrap, "--help"], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        _bwrap_features[key] = option in text
    return _bwrap_features[key]


def _unprivileged_userns_allowed() -> bool:
    """Whether an unprivileged user may create a user namespace on this kernel."""
    for path, forbidden in (
        ("/proc/sys/user/max_user_namespaces", "0"),
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),
    ):
        with contextlib.suppress(OSError):
            if Path(path).read_text().strip() == forbidden:
                return False
    return True


def _count_tasks(uid: int) -> int:
    """Processes and threads of ``uid``: what RLIMIT_NPROC counts."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
    return count


# --- sandbox uids --------------------------------------------------------------------------------

_issued_lock = threading.Lock()
_issued: list[int] = []
_uid_cursor = random.randrange(_UID_COUNT)


def _uid_dir() -> Path:
    """Where uid claims live: one lock file per uid, held (flock) while its sandbox runs.

    A flock dies with its holder, so a worker killed with -9 frees its uids. Workers sharing a
    kernel but not /tmp (root workers in separate containers) must share this directory.
    """
    path = Path(os.environ.get(UID_DIR_ENV) or Path(tempfile.gettempdir()) / "circuitboard-uids")
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    info = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path) or info.st_uid != os.geteuid():
        raise SandboxError(f"{path} is not a directory of ours; cannot claim sandbox uids there")
    return path


class UidClaim:
    """A sandbox uid nobody else uses while this claim is held (flock on ``<dir>/<uid>``)."""

    def __init__(self) -> None:
        global _uid_cursor
        directory = _uid_dir()
        with _issued_lock:
            # this process walks the range from a random start, so it reuses no uid soon;
            # the flock decides between processes
            start = _uid_cursor = (_uid_cursor + 1) % _UID_COUNT
        for i in range(_UID_COUNT):
            uid = _UID_BASE + (start + i) % _UID_COUNT
            fd = os.open(
                directory / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            with _issued_lock:
                _issued.append(uid)
                _uid_cursor = uid - _UID_BASE
            return
        raise SandboxError("every sandbox uid is in use")

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def issued_uids() -> list[int]:
    """Every sandbox uid this process has used (tests look for processes left running as them)."""
    with _issued_lock:
        return list(_issued)


# --- limits and environment ----------------------------------------------------------------------


def _set_limits(limits: SandboxLimits, nproc: int) -> None:
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


def _describe_exit(code: int | None, limits: SandboxLimits, *, oom: bool = False) -> str:
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


def _clip(value: Any, limit: int = MAX_MESSAGE_CHARS) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sanitize_result(raw: Any) -> dict[str, Any] | None:
    """The runner's answer reduced to the fields we know, each type-checked and length-capped.

    The submission runs in the runner's process and can write anything in its place, so this is
    untrusted input: unknown keys are dropped, every text is clipped.
    """
    if not isinstance(raw, dict):
        return None
    status = raw.get("status")
    result: dict[str, Any] = {
        "status": status if status in _RESULT_STATUSES else "load_error",
        "errors": {},
        "circuit": None,
        "has_predict": raw.get("has_predict") is True,
    }
    if status not in _RESULT_STATUSES:
        result["message"] = "the submission's answer to the verifier was malformed"
    elif "message" in raw:
        result["message"] = _clip(raw["message"])
    errors = raw.get("errors")
    if isinstance(errors, dict):
        for key in ("predict", "circuit", "hypothesis"):
            if key in errors:
                result["errors"][key] = _clip(errors[key])
    for key in ("load_seconds", "predict_seconds", "address_space_base"):
        if isinstance(raw.get(key), int | float):
            result[key] = float(raw[key])
    circuit = raw.get("circuit")
    if circuit is not None:
        if (
            isinstance(circuit, list)
            and len(circuit) <= MAX_CIRCUIT_ITEMS
            and all(isinstance(c, str) and len(c) <= MAX_CIRCUIT_ITEM_CHARS for c in circuit)
        ):
            result["circuit"] = circuit
        else:
            result["errors"]["circuit"] = (
                f"CIRCUIT must be a list of at most {MAX_CIRCUIT_ITEMS} strings "
                f"of at most {MAX_CIRCUIT_ITEM_CHARS} characters"
            )
    return result


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
        self._log = os.fdopen(os.memfd_create("cb-sandbox-log"), "w+b")  # in memory, capped
        try:
            self._start(bwrap, use_bwrap, nice, command)
        except BaseException:
            self._release()
            raise
        self._finalizer = weakref.finalize(
            self, _cleanup, self.proc, self.workdir, self.cgroup, self._claim
        )

    def _start(self, bwrap: str | None, use_bwrap: bool, nice: int, command) -> None:
        limits = self.limits
        budget = str(limits.memory_mb)
        runner = command or [sys.executable, "-I", "-B", "/opt/circuitboard/runner.py", budget]
        if use_bwrap:
            if os.geteuid() == 0:
                self._claim = UidClaim()
                self.uid = self._claim.uid
            layout, why = cgroups.probe()
            if layout is not None:
                try:
                    self.cgroup = cgroups.CgroupLeaf(
                        layout,
                        memory_bytes=(limits.memory_mb + INTERPRETER_MB) << 20,
                        pids=limits.nproc,
                        tag="job",
                    )
                except OSError as exc:
                    log.warning("no cgroup for this sandbox (%s); per-process limits apply", exc)
            argv = self._bwrap_argv(bwrap, runner)  # type: ignore[arg-type]
            cwd = None
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="cb-sandbox-"))
            argv = [sys.executable, "-I", "-B", str(RUNNER), budget] if command is None else command
            cwd = str(self.workdir)
        self._shared_uid = self.cgroup is None and self.uid is None
        if self.cgroup is not None:
            nproc = limits.nproc
        else:
            nproc = limits.fallback_nproc if use_bwrap else limits.nproc
            if self._shared_uid:
                # RLIMIT_NPROC counts every task of the caller's uid: the budget comes on top,
                # with room for sandboxes starting beside this one until the job is handed over
                nproc += _count_tasks(os.getuid()) + _START_SLACK
        leaf = self.cgroup

        def preexec() -> None:
            if leaf is not None:
                leaf.join()  # before dropping privileges: everything it starts is counted
            if nice:
                os.nice(nice)
            _set_limits(limits, nproc)

        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=cwd,
            env=_env(),
            start_new_session=True,
            preexec_fn=preexec,
            close_fds=True,
        )

    def _bwrap_argv(self, bwrap: str, command: list[str]) -> list[str]:
        disable_userns = ["--disable-userns"] if _bwrap_supports(bwrap, "--disable-userns") else []
        args = [bwrap]
        if self.uid is None:
            # Unprivileged caller: a user namespace maps it to nobody inside, with no further
            # user namespaces (one could mount a tmpfs outside every limit).
            args += ["--unshare-user", "--uid", "65534", "--gid", "65534", *disable_userns]
        args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--hostname", "sandbox", "--new-session"]
        args += ["--die-with-parent"]
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
        interpreter_home = os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))
        prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, interpreter_home)}
        for prefix in sorted(prefixes):
            if prefix != "/usr" and not prefix.startswith("/usr/"):
                binds.append((prefix, prefix))
        made: set[str] = set()
        for _, dest in binds:
            # parents made world-traversable
            parent = Path(dest).parent
            for d in reversed([parent, *parent.parents]):
                if str(d) != "/" and str(d) not in made:
                    made.add(str(d))
                    args += ["--perms", "0755", "--dir", str(d)]
        for src, dest in binds:
            args += ["--ro-bind", src, dest]
        args += ["--perms", "1777", "--size", str(self.limits.work_mb << 20)]
        args += ["--tmpfs", SANDBOX_HOME]
        args += ["--proc", "/proc", "--dev", "/dev"]
        if self.uid is None:
            # bwrap's /dev is a tmpfs of half the RAM owned by the sandbox user here (as root
            # it is root's, and the code runs as another uid); device nodes keep working
            args += ["--remount-ro", "/dev"]
        # /dev/shm: a read-only page instead of a writable tmpfs of half the RAM; / is bwrap's
        # own tmpfs, read-only too
        args += ["--perms", "0555", "--size", "4096", "--tmpfs", "/dev/shm"]
        args += ["--remount-ro", "/dev/shm", "--remount-ro", "/"]
        args += ["--chdir", SANDBOX_HOME, "--clearenv"]
        for key, value in _env().items():
            args += ["--setenv", key, value]
        args += ["--"]
        if self.uid is not None:
            # Root caller: bwrap sets up the mounts (as root it can bind an interpreter that only
            # root can reach), then the code runs as a uid of its own with every capability gone
            # (RLIMIT_NPROC does not apply to root) ...
            args += [SETPRIV, f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups"]
            args += ["--inh-caps=-all", "--bounding-set=-all", "--nnp", "--pdeathsig=KILL"]
            if disable_userns and _unprivileged_userns_allowed():
                # ... inside a user namespace of that uid which forbids further ones (where the
                # kernel forbids them to unprivileged users anyway, this is not needed)
                args += ["--", bwrap, "--unshare-user", "--uid", "65534", "--gid", "65534"]
                args += [*disable_userns, "--dev-bind", "/", "/", "--chdir", SANDBOX_HOME]
            args += ["--"]
        args += command
        return args

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

    def _send(self, data: bytes, deadline: float) -> None:
        """Hand the job over without ever blocking past the deadline."""
        assert self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        os.set_blocking(fd, False)
        view = memoryview(data)
        try:
            while view:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                _, ready, _ = select.select([], [fd], [], left)
                if ready:
                    view = view[os.write(fd, view) :]
        except OSError:  # the child is gone; its exit status says why
            pass
        finally:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def _receive(self, cap: int, deadline: float) -> tuple[bytes, bool, bool]:
        """The control pipe until it closes: (data up to ``cap``, overflowed, timed out)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        chunks: list[bytes] = []
        size, overflow = 0, False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(chunks), overflow, True
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks), overflow, False
            if size + len(chunk) > cap:
                overflow = True  # keep draining (so the child is not blocked), keep nothing
                continue
            chunks.append(chunk)
            size += len(chunk)

    def _tighten_tasks(self) -> None:
        """Shared uid: the budget becomes what runs now plus ``fallback_nproc`` for the job."""
        budget = _count_tasks(os.getuid()) + self.limits.fallback_nproc
        pending, seen = [self.proc.pid], set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            pending += _children(pid)
            with contextlib.suppress(OSError):
                resource.prlimit(pid, resource.RLIMIT_NPROC, (budget, budget))

    def _run(self, source, tokens, k, n_classes, wall, causal=None) -> SandboxOutcome:
        self.wait_ready()
        if self._shared_uid and self.sandboxed:
            self._tighten_tasks()
        job: dict[str, Any] = {"source": source}
        n = 0
        if tokens is not None:
            from safetensors.torch import save

            n = int(tokens.shape[0])
            data = save({"tokens": tokens.contiguous()})
            job.update(tokens=base64.b64encode(data).decode(), k=int(k), n_classes=int(n_classes))
        causal_cap = 0
        if causal is not None:
            from safetensors.torch import save

            data = causal.inputs if isinstance(causal.inputs, bytes) else save(causal.inputs)
            inputs = base64.b64encode(data).decode()
            job["causal"] = {**causal.spec, "inputs": inputs}
            causal_cap = 2 * causal.max_bytes
        started = time.monotonic()
        deadline = started + wall
        self._send((json.dumps(job) + "\n").encode(), deadline)
        cap = MAX_RESULT_BYTES + 2 * (n * int(k) * 8 + 4096) + causal_cap
        raw, overflow, timed_out = self._receive(cap, deadline)
        if timed_out:
            _kill_group(self.proc)
            code = self.proc.returncode
        else:
            try:
                code = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
                code = None
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
        answer = self._parse(raw)
        result = sanitize_result(answer.get("result")) if answer else None
        if result is None:
            outcome.failure = _describe_exit(code, self.limits, oom=oom)
            return outcome
        outcome.result = result
        status = result.get("status")
        if status == "memory":
            outcome.failure = (
                f"{result.get('message', 'out of memory')} (limit {self.limits.memory_mb} MB)"
            )
        elif status != "ok":
            outcome.failure = result.get("message") or "the submission failed"
        elif result.get("has_predict") and "predict" not in result.get("errors", {}):
            outcome.predictions = _decode_predictions(answer.get("predictions"), n, int(k))
            if outcome.predictions is None:
                result.setdefault("errors", {})["predict"] = (
                    "predict's output could not be read back (missing, malformed or tampered with)"
                )
        if causal is not None and status == "ok" and "hypothesis" not in result["errors"]:
            outcome.causal = _decode_tensors(answer.get("causal"), causal.max_bytes)
            error = None if outcome.causal is None else causal.check(outcome.causal)
            if outcome.causal is None or error:
                outcome.causal = None
                result["errors"]["hypothesis"] = error or (
                    "the hypothesis' output could not be read back (missing or malformed)"
                )
        return outcome

    @staticmethod
    def _parse(raw: bytes) -> dict[str, Any] | None:
        """The last line of the control pipe as a JSON object (the runner writes one at the end)."""
        lines = [line for line in raw.split(b"\n") if line.strip()]
        if not lines:
            return None
        try:
            answer = json.loads(lines[-1].decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        return answer if isinstance(answer, dict) else None

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


def _decode_tensors(encoded: Any, max_bytes: int) -> dict[str, Any] | None:
    """Tensors the runner sent as base64 safetensors (size-capped, never pickle), or None."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not isinstance(encoded, str) or len(encoded) > 2 * max_bytes:
        return None
    try:
        return load(base64.b64decode(encoded, validate=True))
    except (SafetensorError, ValueError, RuntimeError, OverflowError):
        return None


def _decode_predictions(encoded: Any, n: int, k: int) -> Any:
    """Predictions as safetensors bytes (never pickle), checked for name, dtype and shape."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not isinstance(encoded, str) or len(encoded) > 2 * (n * k * 8 + 4096):
        return None
    try:
        tensors = load(base64.b64decode(encoded, validate=True))
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


def _cleanup(
    proc: subprocess.Popen,
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


# --- self-check ----------------------------------------------------------------------------------

_CHECK = (
    "import os\n"
    "open('/sandbox/w', 'w').write('x'); open('/tmp/w', 'w').write('x')\n"
    "for path in ('/dev/shm/w', '/w'):\n"
    "    try:\n"
    "        open(path, 'w')\n"
    "        raise SystemExit(path + ' is writable')\n"
    "    except OSError:\n"
    "        pass\n"
    "print('sandbox-ok', os.getuid())\n"
)


def self_check(limits: SandboxLimits | None = None, *, timeout: float = 60.0) -> str | None:
    """Start a real sandbox (same namespaces, mounts, uid and limits as a job) running a short
    probe; None when it works, else the reason a submission could not be verified here."""
    if bwrap_path() is None:
        return "bubblewrap (bwrap) is not installed (apt-get install bubblewrap)"
    if os.geteuid() == 0 and not os.access(SETPRIV, os.X_OK):
        return f"{SETPRIV} is missing (util-linux): a root worker needs it to drop to sandbox uids"
    command = [sys.executable, "-I", "-S", "-c", _CHECK]
    try:
        box = Sandbox(limits, command=command)
    except (SandboxUnavailable, SandboxError, OSError) as exc:
        return f"the sandbox cannot start: {exc}"
    try:
        box._send(b"", time.monotonic() + timeout)
        raw, _, timed_out = box._receive(4096, time.monotonic() + timeout)
        code = box.proc.wait(timeout=timeout) if not timed_out else None
    except subprocess.TimeoutExpired:
        timed_out, code, raw = True, None, b""
    finally:
        detail = " ".join(box.log_tail().split())[-800:] or "no output"
        box.close()
    if timed_out:
        return f"the sandbox did not answer within {timeout:g} s"
    if code != 0 or not raw.startswith(b"sandbox-ok"):
        return f"the sandbox cannot start (exit status {code}): {detail}"
    return None


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
