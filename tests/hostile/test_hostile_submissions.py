"""Hostile submissions: each ends in a clean failed verdict, leaks nothing, leaves no process behind.

All cases run once, concurrently (they are independent sandboxes with their own uids), in a module
fixture; each test then asserts on its own verdict. Limits are small so the module stays fast.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from puzzles.catalog import get_puzzle
from puzzles.verify import SandboxLimits, Verdict, cgroups, verify_submission
from puzzles.verify import sandbox as sandbox_mod

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap NOT installed"),
    # the module fixture runs all cases (4 at a time): minutes on a loaded 2-core machine
    pytest.mark.timeout(900),
]

SECRET = "xoxb-HOSTILE-TEST-SECRET-5f1d"
# wall < cpu so a busy loop ends on the wall clock; 8 s leaves a loaded 2-core machine room
LIMITS = SandboxLimits(memory_mb=1536, cpu_seconds=16, wall_seconds=8.0, nproc=32)
# Cases that must be stopped by the memory limit get clocks it always beats: on a machine busy
# enough, paging in 1.5 GB can take longer than 8 s, and the wall clock would win the race.
MEMORY_CASES = {"memory_bomb", "tensor_over_memory_limit", "forked_memory"}
MEMORY_LIMITS = replace(LIMITS, cpu_seconds=300, wall_seconds=300.0)
HOST_FILE_SECRET = "DATABASE-ROW-SECRET-93be"
FORKED_MB = 800  # three children: 2400 MB together, over LIMITS.memory_mb (+ the interpreter's
# allowance, sandbox.INTERPRETER_MB), each one under it
INJECTION = (
    "\x1b]0;owned\x07\x1b[2J\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\ \x9b31m "
    "<!channel> <http://evil.example|https://docs.example> [docs](http://evil.example) "
    "&lt;!here&gt;"
)

PREDICT_OK = """
def predict(tokens):
    body = tokens[:, 1:-1]
    return (body == body.flip(-1)).all(-1).long()
"""


@dataclass
class Case:
    filename: str
    source: bytes


def _cases(tmp: Path, port: int) -> dict[str, Case]:
    weights = get_puzzle("palindromes").weights_path
    db_file = tmp / "circuitboard.db"
    outside = tmp / "written-by-sandbox"

    def py(text: str) -> Case:
        # every attack also defines predict, so it gets past the static checks and really runs
        if "def predict" not in text:
            text += PREDICT_OK
        return Case("solution.py", text.encode())

    return {
        "fork_bomb": py(
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        ),
        "memory_bomb": py("chunks = []\nwhile True:\n    chunks.append(bytearray(200_000_000))\n"),
        "infinite_loop": py("while True:\n    pass\n"),
        "busy_sleep": py("import time\ntime.sleep(120)\n" + PREDICT_OK),
        "socket_to_host": py(
            f"""
import socket
for port in ({port}, 5432, 6379):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        print("CONNECTED", port)
    except OSError as e:
        print("blocked", port, e)
raise RuntimeError("done probing")
"""
        ),
        "env_secret": py(
            f"""
import os
found = [k for k, v in os.environ.items() if "{SECRET}" in v or k.startswith("CIRCUITBOARD")]
for path in ("/proc/self/environ", "/proc/1/environ"):
    try:
        found.append(open(path, "rb").read().decode(errors="replace"))
    except OSError:
        pass
print("ENV", sorted(os.environ), found)
raise RuntimeError("env probed")
"""
        ),
        "other_process_environ": py(
            """
import os
seen = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            seen.append(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
        except OSError:
            pass
print("PROCS", len(seen), seen)
raise RuntimeError("procs probed")
"""
        ),
        "read_host_files": py(
            f"""
leaks = []
for path in ({str(weights)!r}, {str(db_file)!r}, "/etc/shadow", "/root/.bash_history"):
    try:
        leaks.append(open(path, "rb").read(200))
    except OSError as e:
        print("blocked", path, type(e).__name__)
print("READ", leaks)
raise RuntimeError("files probed")
"""
        ),
        "write_outside": py(
            f"""
for path in ({str(outside)!r}, "/usr/lib/evil", "/opt/circuitboard/runner.py", "/tmp/../etc/x"):
    try:
        open(path, "w").write("pwned")
        print("WROTE", path)
    except OSError as e:
        print("blocked", path, type(e).__name__)
raise RuntimeError("writes probed")
"""
        ),
        "print_100mb": py(
            "import sys\nchunk = 'y' * 1_000_000\nfor _ in range(100):\n    sys.stdout.write(chunk)\n"
            + PREDICT_OK
        ),
        "malicious_pickle_output": py(
            f"""
import base64, os, pickle, json
class Evil:
    def __reduce__(self):
        return (os.system, ("touch {tmp / "PICKLE-RAN"}",))
def predict(tokens):
    result = {{"status": "ok", "errors": {{}}, "circuit": ["L0H0"], "has_predict": True}}
    answer = {{"result": result, "predictions": base64.b64encode(pickle.dumps(Evil())).decode()}}
    for fd in os.listdir("/proc/self/fd"):  # the answer channel
        try:
            if int(fd) > 2 and os.readlink(f"/proc/self/fd/{{fd}}").startswith("pipe:"):
                os.write(int(fd), (json.dumps(answer) + "\\n").encode())
        except OSError:
            pass
    os._exit(0)
"""
        ),
        "malformed_notebook": Case("solution.ipynb", b'{"cells": [ {"cell_type": "code", '),
        "non_utf8": Case("solution.py", b"def predict(tokens):\n    return '\xff\xfe'\n"),
        "syntax_error": py("def predict(tokens)\n    return tokens\n"),
        "oversized_file": Case(
            "solution.py", b"# " + b"x" * 2_000_000 + b"\n" + PREDICT_OK.encode()
        ),
        "wrong_shape": py("def predict(tokens):\n    return tokens\n"),
        "wrong_dtype": py("def predict(tokens):\n    return tokens[:, 0].float()\n"),
        "nan_output": py(
            "import torch\ndef predict(tokens):\n    return torch.full((tokens.shape[0],), float('nan'))\n"
        ),
        "os_exit": py("import os\ndef predict(tokens):\n    os._exit(0)\n"),
        "signals_to_parent": py(
            """
import os, signal
for pid in (os.getppid(), 1, -1):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError as e:
        print("blocked kill", pid, e)
raise RuntimeError("signals sent")
"""
        ),
        "tiocsti": py(
            """
import fcntl, termios, os
for fd_source in (0, 1, 2, "/dev/tty"):
    try:
        fd = os.open(fd_source, os.O_RDWR) if isinstance(fd_source, str) else fd_source
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
        print("INJECTED", fd_source)
    except OSError as e:
        print("blocked", fd_source, e)
raise RuntimeError("tiocsti probed")
"""
        ),
        "symlink_in_output": py(
            f"""
import os, json
def predict(tokens):
    os.makedirs("out", exist_ok=True)
    os.symlink({str(db_file)!r}, "out/result.json")
    os.symlink({str(weights)!r}, "out/predictions.safetensors")
    os._exit(0)
"""
        ),
        "double_fork_daemon": py(
            """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", ["sleep", "4242.5"])
    os._exit(0)
time.sleep(0.3)
def predict(tokens):
    return tokens[:, 0] * 0
"""
        ),
        "tensor_over_memory_limit": py(
            "import torch\ndef predict(tokens):\n    return torch.zeros(4_000_000_000, dtype=torch.long)\n"
        ),
        "circuit_not_a_list": py("CIRCUIT = {'L0H0': 1}\n" + PREDICT_OK),
        "circuit_bad_names": py("CIRCUIT = ['L9H9', 'rm -rf /']\n" + PREDICT_OK),
        "system_exit_on_import": py("raise SystemExit(3)\n" + PREDICT_OK),
        # --- disk: the work dir and /tmp are small tmpfs mounts inside the sandbox -------------
        "fill_the_disk": py(
            """
import os
written = 0
for where in (".", "/tmp"):
    for i in range(40):  # 40 x 30 MB each: every file under the file-size limit
        try:
            with open(os.path.join(where, f"fill{i}"), "wb") as fh:
                for _ in range(30):
                    fh.write(b"x" * 1_000_000)
                    written += 1
        except OSError:
            break
print("WROTE_MB", written)
raise RuntimeError("disk filled")
"""
        ),
        "deep_directory_chain": py(
            """
import os
for _ in range(1600):  # walked down one level at a time: deeper than a path can name
    os.mkdir("d")
    os.chdir("d")
print("DEEP made")
raise RuntimeError("deep chain made")
"""
        ),
        "dev_shm_and_root": py(
            """
for path in ("/dev/shm/big", "/big", "/dev/big"):
    try:
        with open(path, "wb") as fh:
            fh.write(b"x" * 50_000_000)
        print("WROTE", path)
    except OSError as e:
        print("blocked", path, type(e).__name__)
raise RuntimeError("shm probed")
"""
        ),
        # --- memory: one limit for everything the submission forks -----------------------------
        "forked_memory": py(
            f"""
import os, time
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray({FORKED_MB} * 1_000_000)  # touched: bytearray zero-fills
            print("CHILD_HOLDS", len(block) // 1_000_000, flush=True)
            time.sleep(2)
        finally:
            os._exit(0)
    children.append(pid)
held = 0
for pid in children:
    _, status = os.waitpid(pid, 0)
    held += os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
print("CHILDREN_DONE", held)
raise RuntimeError("forked memory probed")
"""
        ),
        "nested_user_namespace": py(
            """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0:
    print("USERNS_CREATED")
else:
    print("blocked userns", os.strerror(ctypes.get_errno()))
raise RuntimeError("userns probed")
"""
        ),
        # --- messages: every text that leaves the sandbox is capped ----------------------------
        "forged_huge_result": py(
            """
import json, os
def predict(tokens):
    forged = json.dumps({"status": "memory", "message": "M" * 900_000,
                         "errors": {f"k{i}": "E" * 4000 for i in range(20)},
                         "circuit": None, "has_predict": False})
    os.makedirs("out", exist_ok=True)
    open("out/result.json", "w").write(forged)
    for fd in os.listdir("/proc/self/fd"):
        try:
            if int(fd) > 2 and os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                os.write(int(fd), ('{"result": ' + forged + '}\\n').encode())
        except OSError:
            pass
    os._exit(0)
"""
        ),
        "deep_json_notebook": Case(
            "solution.ipynb", b'{"cells": ' + b"[" * 3000 + b"]" * 3000 + b"}"
        ),
        # --- injection: what it prints is shown escaped wherever it goes ----------------------
        "escape_sequences_and_mentions": py(
            f"""
print({INJECTION!r})
raise RuntimeError({INJECTION!r})
"""
        ),
    }


def _left_behind(uids: set[int], *, grace: float = 30.0) -> list[str]:
    """Sandbox processes still there after ``grace`` seconds: the kernel tears a killed pid
    namespace down asynchronously, so a process that is merely dying is waited for, not counted
    (on a loaded machine that takes a moment); one that stays is a real leftover."""
    deadline = time.monotonic() + grace
    while (found := _processes_running_as(uids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def _processes_running_as(uids: set[int]) -> list[str]:
    """Processes (zombies included) whose uid is one of the given sandbox uids."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        uid_line = next((line for line in status.splitlines() if line.startswith("Uid:")), "")
        if uids & {int(u) for u in uid_line.split()[1:]}:
            found.append(f"{pid}: {status.splitlines()[0]}")
    return found


class _DiskSampler(threading.Thread):
    """Samples the size of the worker's temp dir (``du``: any depth) while the cases run."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.peak, self.samples = path, 0, 0
        self.stop = threading.Event()

    def size(self) -> int:
        out = subprocess.run(["du", "-sb", str(self.path)], capture_output=True, text=True).stdout
        return int(out.split()[0]) if out.strip() else 0

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.peak = max(self.peak, self.size())
            self.samples += 1


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "circuitboard.db").write_text(HOST_FILE_SECRET)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    cases = _cases(tmp, listener.getsockname()[1])
    puzzle = get_puzzle("palindromes")
    first_uid = len(sandbox_mod.issued_uids())
    old = os.environ.get("CIRCUITBOARD_SLACK_BOT_TOKEN")
    os.environ["CIRCUITBOARD_SLACK_BOT_TOKEN"] = SECRET
    os.environ["DATABASE_URL"] = f"postgresql://u:{SECRET}@db/x"
    # the worker's own temp dir, measured while the cases run: a sandbox must never fill it
    worker_tmp = tmp / "worker-tmp"
    worker_tmp.mkdir()
    old_tempdir, tempfile.tempdir = tempfile.tempdir, str(worker_tmp)
    sampler = _DiskSampler(worker_tmp)
    sampler.start()
    try:

        def run(name: str) -> Verdict:
            case, limits = cases[name], MEMORY_LIMITS if name in MEMORY_CASES else LIMITS
            return verify_submission(
                case.source, case.filename, puzzle, limits=limits, heldout_size=64
            )

        # Without a cgroup or uids of their own (an unprivileged worker's fallback) sandboxes
        # share one uid's task count, so a fork bomb starves any sandbox starting beside it:
        # then it runs alone, after the others (the README says so).
        shared = os.geteuid() != 0 and cgroups.probe()[0] is None
        alone = {"fork_bomb"} if shared else set()
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {name: pool.submit(run, name) for name in cases if name not in alone}
            verdicts = {name: f.result() for name, f in futures.items()}
        verdicts.update({name: run(name) for name in alone})
    finally:
        sampler.stop.set()
        sampler.join()
        tempfile.tempdir = old_tempdir
        if old is None:
            os.environ.pop("CIRCUITBOARD_SLACK_BOT_TOKEN", None)
        else:
            os.environ["CIRCUITBOARD_SLACK_BOT_TOKEN"] = old
        os.environ.pop("DATABASE_URL", None)
    try:
        connection, _ = listener.accept()
        connection.close()
        accepted = True
    except BlockingIOError:
        accepted = False
    listener.close()
    uids = sandbox_mod.issued_uids()[first_uid:]
    layout, why = cgroups.probe()
    request.config.hostile_summary = dict(
        cases=len(verdicts),
        user="root" if os.geteuid() == 0 else f"uid {os.geteuid()} (unprivileged)",
        limits="cgroup" if layout is not None else f"fallback ({why})",
    )
    return {
        "verdicts": verdicts,
        "tmp": tmp,
        "accepted": accepted,
        "leftover": _left_behind(set(uids)),
        "uids": uids,
        "n_sandboxes": len(uids) if os.geteuid() == 0 else len(verdicts),
        "disk_peak": max(sampler.peak, sampler.size()),
        "disk_after": sampler.size(),
        "disk_samples": sampler.samples,
        "cgroup": layout is not None,
        "worker_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _check_clean_failure(verdict: Verdict) -> str:
    """A failed verdict with a readable message and no engine traceback; returns its JSON text."""
    assert verdict.passed is False
    text = json.dumps(verdict.to_json())
    assert "Traceback (most recent call last)" not in text
    assert "puzzles/verify" not in text and "_runner.py" not in text
    assert SECRET not in text and HOST_FILE_SECRET not in text
    assert len(text) < 200_000
    assert verdict.report_md
    reasons = [verdict.error or ""] + [c.message for c in verdict.checks.values()]
    assert any(reasons), "a failed verdict must say why"
    return text


ALL = [
    "fork_bomb",
    "memory_bomb",
    "infinite_loop",
    "busy_sleep",
    "socket_to_host",
    "env_secret",
    "other_process_environ",
    "read_host_files",
    "write_outside",
    "print_100mb",
    "malicious_pickle_output",
    "malformed_notebook",
    "non_utf8",
    "syntax_error",
    "oversized_file",
    "wrong_shape",
    "wrong_dtype",
    "nan_output",
    "os_exit",
    "signals_to_parent",
    "tiocsti",
    "symlink_in_output",
    "double_fork_daemon",
    "tensor_over_memory_limit",
    "circuit_not_a_list",
    "circuit_bad_names",
    "system_exit_on_import",
    "fill_the_disk",
    "deep_directory_chain",
    "dev_shm_and_root",
    "forked_memory",
    "nested_user_namespace",
    "forged_huge_result",
    "deep_json_notebook",
    "escape_sequences_and_mentions",
]


@pytest.mark.parametrize("name", ALL)
def test_hostile_submission_fails_cleanly(outcome, name: str) -> None:
    _check_clean_failure(outcome["verdicts"][name])


def test_every_case_is_covered(outcome) -> None:
    assert set(outcome["verdicts"]) == set(ALL)
    assert len(ALL) >= 20


def test_no_process_left_behind(outcome) -> None:
    assert outcome["n_sandboxes"] >= 20
    if os.geteuid() == 0:  # concurrent sandboxes never share a uid
        assert len(set(outcome["uids"])) == len(outcome["uids"])
    assert outcome["leftover"] == []
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "sleep 4242.5" not in out


def test_worker_is_healthy_after_the_bombs(outcome) -> None:
    # we can still fork, allocate and run a normal verification
    assert subprocess.run([sys.executable, "-c", "print(1)"], capture_output=True).returncode == 0
    puzzle = get_puzzle("palindromes")
    verdict = verify_submission(
        puzzle.solution_path.read_bytes(), "solution.py", puzzle, limits=LIMITS, heldout_size=64
    )
    assert verdict.error is None, verdict.report_md


def test_limits_are_named_in_the_messages(outcome) -> None:
    v = outcome["verdicts"]
    for name in ("infinite_loop", "busy_sleep"):
        assert "did not finish within" in v[name].error
    assert v["memory_bomb"].error and (
        "memory" in v["memory_bomb"].error or "killed" in v["memory_bomb"].error
    )
    assert "MB" in (v["print_100mb"].error or "") or "File too large" in (
        v["print_100mb"].error or ""
    )
    assert v["malformed_notebook"].error_kind == "input"
    assert "not valid JSON" in v["malformed_notebook"].error
    assert "UTF-8" in v["non_utf8"].error
    assert "Syntax error at line 1" in v["syntax_error"].error
    assert "limit" in v["oversized_file"].error
    assert "shape" in v["wrong_shape"].checks["replication"].message
    assert "float" in v["wrong_dtype"].checks["replication"].message
    assert "NaN" in v["nan_output"].checks["replication"].message
    assert "exited before finishing" in v["os_exit"].error
    assert "SystemExit" in v["system_exit_on_import"].error
    assert "list of strings" in v["circuit_not_a_list"].checks["circuit"].message
    assert "L9H9" in v["circuit_bad_names"].checks["circuit"].message
    tensor = v["tensor_over_memory_limit"]
    assert "memory" in (tensor.error or tensor.checks["replication"].message).lower()


def test_network_is_unreachable(outcome) -> None:
    report = outcome["verdicts"]["socket_to_host"].report_md
    assert "CONNECTED" not in report
    assert "blocked" in report
    assert outcome["accepted"] is False


def test_secrets_and_host_files_stay_outside(outcome) -> None:
    v = outcome["verdicts"]
    assert SECRET not in v["env_secret"].report_md
    assert "ENV" in v["env_secret"].report_md  # the probe did run
    assert SECRET not in v["other_process_environ"].report_md
    report = v["read_host_files"].report_md
    assert "READ []" in report and HOST_FILE_SECRET not in report
    assert not (outcome["tmp"] / "written-by-sandbox").exists()
    assert "WROTE" not in v["write_outside"].report_md
    assert not (outcome["tmp"] / "PICKLE-RAN").exists()
    assert "could not be read back" in v["malicious_pickle_output"].checks["replication"].message
    assert "INJECTED" not in v["tiocsti"].report_md


def test_symlinks_in_output_are_not_followed(outcome) -> None:
    verdict = outcome["verdicts"]["symlink_in_output"]
    assert "left no result" in verdict.error
    assert HOST_FILE_SECRET not in json.dumps(verdict.to_json())


def test_signals_do_not_reach_the_worker(outcome) -> None:
    # we are still alive to run this assertion; the sandbox reported its own failure
    assert "signals sent" in outcome["verdicts"]["signals_to_parent"].report_md
    assert os.getpid() > 0
    os.kill(os.getpid(), 0)
    assert signal.getsignal(signal.SIGTERM) is not None


def _log_number(report: str, key: str) -> int | None:
    match = re.search(rf"{key} (\d+)", report)
    return int(match.group(1)) if match else None


def test_disk_writes_stay_in_small_tmpfs_mounts(outcome) -> None:
    v = outcome["verdicts"]
    written = _log_number(v["fill_the_disk"].report_md, "WROTE_MB")
    assert written is not None, v["fill_the_disk"].report_md
    assert written * 1_000_000 <= (LIMITS.work_mb + LIMITS.tmpfs_mb) << 20  # not 2 x 40 x 30 MB
    report = v["dev_shm_and_root"].report_md
    assert "WROTE" not in report and report.count("blocked") == 3


def test_a_deep_directory_chain_is_no_crash(outcome) -> None:
    verdict = outcome["verdicts"]["deep_directory_chain"]
    assert "DEEP made" in verdict.report_md
    assert verdict.error_kind == "runtime" and "deep chain made" in verdict.error


def test_worker_disk_and_memory_stay_within_bounds(outcome) -> None:
    """Stated bounds: sandboxes write nothing on the worker's disk (its temp dir grows by less
    than 1 MB, lock files only); each sandbox stays within LIMITS.memory_mb in total where a
    cgroup measures it (``memory_mb`` plus the interpreter's allowance); the worker process itself
    (torch, the model) stays under 3 GB."""
    assert outcome["disk_samples"] > 0
    assert outcome["disk_peak"] < 1 << 20, outcome["disk_peak"]
    assert outcome["disk_after"] < 1 << 20
    assert outcome["worker_max_rss_mb"] < 3000
    peaks = [v.memory_peak_mb for v in outcome["verdicts"].values() if v.memory_peak_mb]
    if outcome["cgroup"]:
        assert peaks and max(peaks) <= LIMITS.memory_mb + sandbox_mod.INTERPRETER_MB
    else:
        assert peaks == []


def test_forked_children_share_one_memory_limit(outcome) -> None:
    verdict = outcome["verdicts"]["forked_memory"]
    held = _log_number(verdict.report_md, "CHILDREN_DONE")
    if outcome["cgroup"]:
        # 3 x FORKED_MB > memory_mb + the interpreter's allowance for the whole sandbox: not all
        # three can hold their share
        assert held is None or held < 3, verdict.report_md
        assert verdict.memory_peak_mb <= LIMITS.memory_mb + sandbox_mod.INTERPRETER_MB
    else:
        # the fallback bounds the total by at most fallback_nproc tasks of memory_mb each
        assert held is None or held <= LIMITS.fallback_nproc


def test_no_nested_user_namespace(outcome) -> None:
    report = outcome["verdicts"]["nested_user_namespace"].report_md
    assert "USERNS_CREATED" not in report
    assert "blocked userns" in report


def test_a_forged_result_is_capped(outcome) -> None:
    verdict = outcome["verdicts"]["forged_huge_result"]
    text = json.dumps(verdict.to_json())
    assert len(text) < 30_000, len(text)
    assert verdict.error_kind == "runtime"
    assert verdict.error.startswith("M" * 1000)  # the forged message arrived, cut short
    assert len(verdict.error) <= sandbox_mod.MAX_MESSAGE_CHARS + 100
    assert "k0" not in text  # unknown error keys are dropped, not passed on


def test_a_deep_json_notebook_is_refused_clearly(outcome) -> None:
    verdict = outcome["verdicts"]["deep_json_notebook"]
    assert verdict.error_kind == "input"
    assert "nests 3001 levels deep" in verdict.error


def test_output_is_inert_in_slack_terminals_and_markdown(outcome) -> None:
    from bot.views.escape import markdown, report_mrkdwn, terminal

    report = outcome["verdicts"]["escape_sequences_and_mentions"].report_md
    assert "<!channel>" in report  # the raw report keeps what the code printed ...
    slack = report_mrkdwn(report)  # ... and each destination makes it inert
    assert "<!channel>" not in slack and "&lt;!channel&gt;" in slack
    assert "<http://evil.example|" not in slack and "](http" in slack
    assert "&amp;lt;!here&amp;gt;" in slack
    shown = terminal(report)
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "\\x1b]0;owned" in shown
    exported = markdown(report)
    assert "[docs](http" not in exported and "\\[docs\\]" in exported
