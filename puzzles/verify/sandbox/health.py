"""Whether this machine can sandbox at all: a real sandbox running a short probe."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from puzzles.verify.sandbox.bwrap import SETPRIV, bwrap_path
from puzzles.verify.sandbox.errors import SandboxError, SandboxUnavailable
from puzzles.verify.sandbox.limits import SandboxLimits
from puzzles.verify.sandbox.process import Sandbox

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
    code: int | None
    try:
        box.send(b"", time.monotonic() + timeout)
        raw, _, timed_out = box.receive(4096, time.monotonic() + timeout)
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
