"""The bubblewrap command line: namespaces, a read-only view of the interpreter, tmpfs mounts, and
(for a root worker) the drop to the sandbox's own uid."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from puzzles.verify.sandbox.limits import SandboxLimits

RUNNER = Path(__file__).parent.parent / "_runner.py"
RUNNER_IN_SANDBOX = "/opt/circuitboard/runner.py"
SANDBOX_HOME = "/sandbox"
SETPRIV = "/usr/bin/setpriv"

_bwrap_features: dict[str, bool] = {}


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def bwrap_supports(bwrap: str, option: str) -> bool:
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


def unprivileged_userns_allowed() -> bool:
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


def sandbox_env() -> dict[str, str]:
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


def bwrap_argv(
    bwrap: str, command: list[str], *, uid: int | None, limits: SandboxLimits
) -> list[str]:
    """bwrap running ``command`` in a fresh sandbox; ``uid`` is the claimed uid of a root worker,
    None for an unprivileged one (then a user namespace maps it to nobody)."""
    disable_userns = ["--disable-userns"] if bwrap_supports(bwrap, "--disable-userns") else []
    args = [bwrap]
    if uid is None:
        # Unprivileged caller: a user namespace maps it to nobody inside, with no further
        # user namespaces (one could mount a tmpfs outside every limit).
        args += ["--unshare-user", "--uid", "65534", "--gid", "65534", *disable_userns]
    args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--hostname", "sandbox", "--new-session"]
    args += ["--die-with-parent"]
    args += _mounts(limits, privileged=uid is not None)
    args += ["--chdir", SANDBOX_HOME, "--clearenv"]
    for key, value in sandbox_env().items():
        args += ["--setenv", key, value]
    args += ["--"]
    if uid is not None:
        args += _drop_privileges(bwrap, uid, disable_userns)
    return args + command


def _mounts(limits: SandboxLimits, *, privileged: bool) -> list[str]:
    # The private /tmp first: binds below may live under /tmp (a checkout or venv there) and a
    # tmpfs mounted after them would hide the interpreter.
    args = ["--perms", "1777", "--size", str(limits.tmpfs_mb << 20), "--tmpfs", "/tmp"]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += _interpreter_binds()
    args += ["--perms", "1777", "--size", str(limits.work_mb << 20)]
    args += ["--tmpfs", SANDBOX_HOME]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if not privileged:
        # bwrap's /dev is a tmpfs of half the RAM owned by the sandbox user here (as root
        # it is root's, and the code runs as another uid); device nodes keep working
        args += ["--remount-ro", "/dev"]
    # /dev/shm: a read-only page instead of a writable tmpfs of half the RAM; / is bwrap's
    # own tmpfs, read-only too
    args += ["--perms", "0555", "--size", "4096", "--tmpfs", "/dev/shm"]
    return args + ["--remount-ro", "/dev/shm", "--remount-ro", "/"]


def _interpreter_binds() -> list[str]:
    """The interpreter and its libraries, read-only; nothing else of the host (no repo data,
    no weights, no database, no /etc, no /home)."""
    binds = [(str(RUNNER), RUNNER_IN_SANDBOX)]
    interpreter_home = os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))
    prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, interpreter_home)}
    for prefix in sorted(prefixes):
        if prefix != "/usr" and not prefix.startswith("/usr/"):
            binds.append((prefix, prefix))
    args: list[str] = []
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
    return args


def _drop_privileges(bwrap: str, uid: int, disable_userns: list[str]) -> list[str]:
    """Root caller: bwrap sets up the mounts (as root it can bind an interpreter that only root
    can reach), then the code runs as a uid of its own with every capability gone
    (RLIMIT_NPROC does not apply to root) ..."""
    args = [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    args += ["--inh-caps=-all", "--bounding-set=-all", "--nnp", "--pdeathsig=KILL"]
    if disable_userns and unprivileged_userns_allowed():
        # ... inside a user namespace of that uid which forbids further ones (where the
        # kernel forbids them to unprivileged users anyway, this is not needed)
        args += ["--", bwrap, "--unshare-user", "--uid", "65534", "--gid", "65534"]
        args += [*disable_userns, "--dev-bind", "/", "/", "--chdir", SANDBOX_HOME]
    return args + ["--"]
