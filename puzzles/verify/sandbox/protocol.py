"""The pipe protocol with the runner: the job out on stdin, one JSON answer back on the control pipe.

Everything that comes back is untrusted (the submission runs in the runner's process and can write
anything in its place): read with a size cap, parsed leniently, reduced to known fields, each
type-checked and length-capped; tensors cross as safetensors, never pickle.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from puzzles.verify.sandbox.limits import SandboxLimits, describe_exit

if TYPE_CHECKING:
    import torch

    from puzzles.verify.causal_check import CausalJob

MAX_RESULT_BYTES = 1 << 20
"""The most the control pipe may carry besides the predictions; more is refused as tampering."""
MAX_MESSAGE_CHARS = 4000
"""Any one message from the sandbox (an error, a traceback) is cut to this length."""
MAX_CIRCUIT_ITEMS = 2000
MAX_CIRCUIT_ITEM_CHARS = 64
RESULT_STATUSES = ("ok", "memory", "load_error")


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


def encode_job(
    source: str,
    *,
    tokens: torch.Tensor | None,
    k: int,
    n_classes: int,
    causal: CausalJob | None,
) -> tuple[bytes, int]:
    """The job line for the runner's stdin, and the most its answer may carry."""
    from safetensors.torch import save

    job: dict[str, Any] = {"source": source}
    n = 0
    if tokens is not None:
        n = int(tokens.shape[0])
        data = save({"tokens": tokens.contiguous()})
        job.update(tokens=base64.b64encode(data).decode(), k=int(k), n_classes=int(n_classes))
    causal_cap = 0
    if causal is not None:
        data = causal.inputs if isinstance(causal.inputs, bytes) else save(causal.inputs)
        inputs = base64.b64encode(data).decode()
        job["causal"] = {**causal.spec, "inputs": inputs}
        causal_cap = 2 * causal.max_bytes
    cap = MAX_RESULT_BYTES + 2 * (n * int(k) * 8 + 4096) + causal_cap
    return (json.dumps(job) + "\n").encode(), cap


def send(fd: int, data: bytes, deadline: float) -> None:
    """Hand the job over without ever blocking past the deadline (the caller closes ``fd``)."""
    os.set_blocking(fd, False)
    view = memoryview(data)
    with contextlib.suppress(OSError):  # the child is gone; its exit status says why
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            _, ready, _ = select.select([], [fd], [], left)
            if ready:
                view = view[os.write(fd, view) :]


def receive(fd: int, cap: int, deadline: float) -> tuple[bytes, bool, bool]:
    """The control pipe until it closes: (data up to ``cap``, overflowed, timed out)."""
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


def parse_answer(raw: bytes) -> dict[str, Any] | None:
    """The last line of the control pipe as a JSON object (the runner writes one at the end)."""
    lines = [line for line in raw.split(b"\n") if line.strip()]
    if not lines:
        return None
    try:
        answer = json.loads(lines[-1].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return answer if isinstance(answer, dict) else None


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
        "status": status if status in RESULT_STATUSES else "load_error",
        "errors": {},
        "circuit": None,
        "has_predict": raw.get("has_predict") is True,
    }
    if status not in RESULT_STATUSES:
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
    _sanitize_circuit(raw.get("circuit"), result)
    return result


def _sanitize_circuit(circuit: Any, result: dict[str, Any]) -> None:
    if circuit is None:
        return
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


def read_answer(
    outcome: SandboxOutcome,
    raw: bytes,
    *,
    limits: SandboxLimits,
    oom: bool,
    n: int,
    k: int,
    causal: CausalJob | None,
) -> SandboxOutcome:
    """Fill ``outcome`` from the runner's answer ``raw`` (a sandbox that ran to its end)."""
    answer = parse_answer(raw)
    result = sanitize_result(answer.get("result")) if answer else None
    if answer is None or result is None:
        outcome.failure = describe_exit(outcome.exit_code, limits, oom=oom)
        return outcome
    outcome.result = result
    status = result.get("status")
    if status == "memory":
        outcome.failure = f"{result.get('message', 'out of memory')} (limit {limits.memory_mb} MB)"
    elif status != "ok":
        outcome.failure = result.get("message") or "the submission failed"
    elif result.get("has_predict") and "predict" not in result.get("errors", {}):
        outcome.predictions = decode_predictions(answer.get("predictions"), n, k)
        if outcome.predictions is None:
            result.setdefault("errors", {})["predict"] = (
                "predict's output could not be read back (missing, malformed or tampered with)"
            )
    if causal is not None and status == "ok" and "hypothesis" not in result["errors"]:
        _read_causal(outcome, answer.get("causal"), causal)
    return outcome


def _read_causal(outcome: SandboxOutcome, encoded: Any, causal: CausalJob) -> None:
    tensors = decode_tensors(encoded, causal.max_bytes)
    error = None if tensors is None else causal.check(tensors)
    if tensors is None or error:
        outcome.result["errors"]["hypothesis"] = error or (
            "the hypothesis' output could not be read back (missing or malformed)"
        )
        return
    outcome.causal = tensors


def decode_tensors(encoded: Any, max_bytes: int) -> dict[str, torch.Tensor] | None:
    """Tensors the runner sent as base64 safetensors (size-capped, never pickle), or None."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if not isinstance(encoded, str) or len(encoded) > 2 * max_bytes:
        return None
    try:
        return load(base64.b64decode(encoded, validate=True))
    except (SafetensorError, ValueError, RuntimeError, OverflowError):
        return None


def decode_predictions(encoded: Any, n: int, k: int) -> torch.Tensor | None:
    """Predictions as safetensors bytes (never pickle), checked for name, dtype and shape."""
    import torch

    tensors = decode_tensors(encoded, n * k * 8 + 4096)
    if tensors is None:
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
