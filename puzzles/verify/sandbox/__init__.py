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

The modules: ``limits`` (what a sandbox may use, rlimits), ``uids`` (a root worker's per-sandbox
uids), ``bwrap`` (the command line), ``protocol`` (the pipes and the untrusted answer),
``process`` (one sandbox's life), ``pool`` (the warm pool), ``health`` (the self-check).
"""

from puzzles.verify.sandbox.bwrap import RUNNER, SANDBOX_HOME, SETPRIV, bwrap_path
from puzzles.verify.sandbox.errors import SandboxError, SandboxUnavailable
from puzzles.verify.sandbox.health import self_check
from puzzles.verify.sandbox.limits import (
    IMPORT_ADDRESS_SPACE_MB,
    INTERPRETER_MB,
    SandboxLimits,
    describe_limits,
)
from puzzles.verify.sandbox.pool import SandboxPool, run_submission
from puzzles.verify.sandbox.process import Sandbox, remove_tree
from puzzles.verify.sandbox.protocol import (
    MAX_CIRCUIT_ITEM_CHARS,
    MAX_CIRCUIT_ITEMS,
    MAX_MESSAGE_CHARS,
    MAX_RESULT_BYTES,
    SandboxOutcome,
    sanitize_result,
)
from puzzles.verify.sandbox.uids import UID_DIR_ENV, UidClaim, issued_uids

__all__ = [
    "IMPORT_ADDRESS_SPACE_MB",
    "INTERPRETER_MB",
    "MAX_CIRCUIT_ITEMS",
    "MAX_CIRCUIT_ITEM_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_RESULT_BYTES",
    "RUNNER",
    "SANDBOX_HOME",
    "SETPRIV",
    "UID_DIR_ENV",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxOutcome",
    "SandboxPool",
    "SandboxUnavailable",
    "UidClaim",
    "bwrap_path",
    "describe_limits",
    "issued_uids",
    "remove_tree",
    "run_submission",
    "sanitize_result",
    "self_check",
]
