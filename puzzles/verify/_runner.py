"""Child side of the sandbox: runs INSIDE bubblewrap, as an unprivileged uid, with no weights.

Standalone on purpose (stdlib + torch + safetensors, nothing from this repository): it is started
before a submission exists (torch already imported), says ``ready`` on its control pipe, then reads
one job from stdin (the source and the tokens as base64 safetensors), executes the submission, and
answers with one JSON line on the control pipe: status, CIRCUIT, messages and the predictions as
base64 safetensors. Nothing goes to disk. One job, then exit. The submission runs in this process,
so the host treats the answer as untrusted input (validated and capped field by field).
"""

from __future__ import annotations

import base64
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

    Load = Callable[[bytes], dict[str, Tensor]]
    Save = Callable[[dict[str, Tensor]], bytes]

SUBMISSION_FILENAME = "<submission>"
MAX_CIRCUIT_ITEMS = 2000
MAX_CIRCUIT_ITEM_CHARS = 64


def _user_traceback(exc: BaseException) -> str:
    """The traceback frames of the submission's own code only (not the runner's)."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if f.filename == SUBMISSION_FILENAME
    ]
    lines = traceback.format_list(frames[-8:])
    lines += traceback.format_exception_only(type(exc), exc)
    text = "".join(lines)
    return text[-3000:]


def _check_circuit(value: object) -> tuple[list | None, str | None]:
    if not isinstance(value, list | tuple):
        return None, f"CIRCUIT must be a list of strings, not {type(value).__name__}"
    if len(value) > MAX_CIRCUIT_ITEMS:
        return None, f"CIRCUIT has {len(value)} entries; at most {MAX_CIRCUIT_ITEMS} are allowed"
    items = []
    for item in value:
        if not isinstance(item, str):
            return None, f"CIRCUIT entries must be strings like 'L0H1', got {type(item).__name__}"
        if len(item) > MAX_CIRCUIT_ITEM_CHARS:
            return None, "a CIRCUIT entry is too long"
        items.append(str(item))
    return items, None


def _check_predictions(
    value: object, torch: ModuleType, n: int, k: int, n_classes: int
) -> tuple[Tensor | None, str | None]:
    """``predict``'s output as a LongTensor ``[n, k]`` of class ids, or None and why not."""
    try:
        out: Tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    except Exception:
        return None, f"predict must return a LongTensor of class ids, not {type(value).__name__}"
    if out.is_floating_point() or out.is_complex():
        bad = "NaN values" if out.is_floating_point() and bool(torch.isnan(out).any()) else "floats"
        return None, (
            f"predict returned {out.dtype} ({bad}); return integer class ids (a LongTensor), "
            "e.g. logits.argmax(-1)"
        )
    if out.dtype == torch.bool:
        out = out.long()
    expected = [(n, k)] + ([(n,)] if k == 1 else [])
    if tuple(out.shape) not in expected:
        want = " or ".join(str(list(s)) for s in expected)
        return None, f"predict returned shape {list(out.shape)}; expected {want}"
    out = out.reshape(n, k).to(torch.int64).contiguous()
    if n and (int(out.min()) < 0 or int(out.max()) >= n_classes):
        return None, f"predict returned class ids outside 0..{n_classes - 1}"
    return out, None


def _address_space_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _cap_address_space(budget_mb: int) -> int:
    """Lower RLIMIT_AS to what this process maps now (interpreter, torch) plus the submission's
    budget, and return that base. A CUDA build of torch maps gigabytes of libraries on import
    (a CPU build about 0.6 GB), so a fixed total would be meaningless across builds."""
    base = _address_space_bytes()
    cap = base + (budget_mb << 20)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return base


def main() -> int:
    control = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the submission's prints go to the captured log, never the control pipe
    import torch
    from safetensors.torch import load, save

    torch.set_num_threads(1)
    # Before "ready": no submission code ever runs without the cap (no /proc: no start).
    address_space_base = _cap_address_space(int(sys.argv[1]) if len(sys.argv) > 1 else 1536)
    control.write("ready\n")
    control.flush()

    line = sys.stdin.readline()
    sys.stdin.close()
    if not line:
        return 3
    job = json.loads(line)
    result: dict = {"status": "ok", "errors": {}, "circuit": None, "has_predict": False}
    result["address_space_base"] = address_space_base
    answer: dict = {"result": result, "predictions": None, "causal": None}

    _run_job(job, result, answer, torch, load, save)
    sys.stdout.flush()
    control.write(json.dumps(answer) + "\n")
    control.flush()
    return 0


def _run_job(
    job: dict, result: dict, answer: dict, torch: ModuleType, load: Load, save: Save
) -> None:
    """Load the submission, read its CIRCUIT, run predict and the hypothesis' functions; what
    they give (or why they failed) goes into ``answer`` and its ``result``. ``load`` and ``save``
    (safetensors) were bound before any submission code ran."""
    namespace = _load_submission(job["source"], result)
    if namespace is None:
        return
    if "CIRCUIT" in namespace:
        result["circuit"], error = _check_circuit(namespace["CIRCUIT"])
        if error:
            result["errors"]["circuit"] = error
    predict = namespace.get("predict")
    if predict is not None and job.get("tokens"):
        result["has_predict"] = True
        if not callable(predict):
            result["errors"]["predict"] = "predict is defined but is not a function"
            return
        tokens = load(base64.b64decode(job["tokens"]))["tokens"]
        out = _run_predict(predict, tokens, int(job["k"]), int(job["n_classes"]), result, torch)
        if out is not None:
            answer["predictions"] = base64.b64encode(save({"predictions": out})).decode()
    if result["status"] == "ok" and job.get("causal"):
        error = _run_causal(namespace, job["causal"], torch, load, save, answer)
        if error:
            result["errors"]["hypothesis"] = error


def _load_submission(source: str, result: dict) -> dict | None:
    """The submission's namespace after running its module code, or None (``result`` says why)."""
    namespace: dict = {"__name__": "submission", "__file__": SUBMISSION_FILENAME}
    started = time.perf_counter()
    try:
        code = compile(source, SUBMISSION_FILENAME, "exec")
        exec(code, namespace)
    except MemoryError:
        result["status"] = "memory"
        result["message"] = "the submission ran out of memory while loading"
        return None
    except BaseException as exc:  # noqa: BLE001 - SystemExit/KeyboardInterrupt from user code too
        result["status"] = "load_error"
        result["message"] = "the submission raised an exception while loading:\n" + _user_traceback(
            exc
        )
        return None
    result["load_seconds"] = time.perf_counter() - started
    return namespace


def _run_predict(
    predict: Callable[[Tensor], object],
    tokens: Tensor,
    k: int,
    n_classes: int,
    result: dict,
    torch: ModuleType,
) -> Tensor | None:
    """``predict(tokens)`` checked for shape and classes; None when it failed (``result`` says
    why: its status for running out of memory, ``errors['predict']`` otherwise)."""
    n = tokens.shape[0]
    started = time.perf_counter()
    try:
        with torch.no_grad():
            out = predict(tokens.clone())
        out, error = _check_predictions(out, torch, n, k, n_classes)
    except MemoryError:
        result["status"] = "memory"
        result["message"] = "predict ran out of memory"
        return None
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, RuntimeError) and "allocate memory" in str(exc):
            result["status"] = "memory"
            result["message"] = "predict ran out of memory"
            return None
        out, error = None, "predict raised an exception:\n" + _user_traceback(exc)
    result["predict_seconds"] = time.perf_counter() - started
    if error:
        result["errors"]["predict"] = error
        return None
    return out


MAX_VARIABLE_ELEMENTS = 4_000_000


def _run_causal(
    namespace: dict, spec: dict, torch: ModuleType, load: Load, save: Save, answer: dict
) -> str | None:
    """Format v2 job: counterfactual answers of the submission, base64 safetensors in the answer."""
    inputs = load(base64.b64decode(spec["inputs"]))
    out, error = counterfactuals(namespace, spec, inputs, torch)
    if out is not None:
        answer["causal"] = base64.b64encode(save(out)).decode()
    return error


def counterfactuals(
    namespace: dict, spec: dict, inputs: dict[str, Tensor], torch: ModuleType
) -> tuple[dict[str, Tensor] | None, str | None]:
    """The solver's algorithm on a pool of inputs, then on base inputs with some variables set to
    their values on source inputs. The wiring (``spec``) comes from the trusted process; only the
    functions are the submission's. Returns ``(tensors, None)`` or ``(None, error)``.
    """
    steps = [*spec["variables"], {**spec["answer"], "name": "answer"}]
    for step in steps:
        if not callable(namespace.get(step["function"])):
            what = "the answer" if step["name"] == "answer" else f"variable {step['name']!r}"
            return None, f"HYPOTHESIS: {what} needs a function `{step['function']}` in your file"

    try:
        with torch.no_grad():
            return _counterfactual_tensors(namespace, steps, spec, inputs, torch)
    except MemoryError:
        return None, "HYPOTHESIS: the hypothesis functions ran out of memory"
    except BaseException as exc:  # noqa: BLE001
        return None, "a HYPOTHESIS function raised an exception:\n" + _user_traceback(exc)


def _counterfactual_tensors(
    namespace: dict, steps: list[dict], spec: dict, inputs: dict[str, Tensor], torch: ModuleType
) -> tuple[dict[str, Tensor] | None, str | None]:
    """The pool's variable values and answers, then each intervention's counterfactual answers."""
    pool = inputs["pool"]
    k, n_classes = int(spec["k"]), int(spec["n_classes"])
    values, answer = _run_steps(namespace, steps, pool, {}, torch, k, n_classes)
    total = sum(v.numel() for v in values.values())
    if total > MAX_VARIABLE_ELEMENTS:
        return None, (
            f"HYPOTHESIS: the variables hold {total} numbers; at most {MAX_VARIABLE_ELEMENTS}"
        )
    out = {"answer": answer}
    for name, value in values.items():
        flat = value.reshape(value.shape[0], -1)
        out[f"value.{name}"] = flat.to(torch.float64).contiguous()
    for i, names in enumerate(spec["interventions"]):
        pairs = inputs[f"pairs.{i}"]
        fixed = {name: values[name][pairs[:, 1]] for name in names}
        out[f"cf.{i}"] = _run_steps(
            namespace, steps, pool[pairs[:, 0]], fixed, torch, k, n_classes
        )[1]
    return out, None


def _run_steps(
    namespace: dict,
    steps: list[dict],
    tokens: Tensor,
    fixed: dict[str, Tensor],
    torch: ModuleType,
    k: int,
    n_classes: int,
) -> tuple[dict[str, Tensor], Tensor]:
    """The solver's functions in order on ``tokens``, the variables in ``fixed`` set instead of
    computed: (variable values, checked answer)."""
    values: dict[str, Tensor] = {}
    for step in steps:
        name = step["name"]
        if name in fixed:
            values[name] = fixed[name]
            continue
        args = [tokens.clone() if i == "tokens" else values[i] for i in step["inputs"]]
        value = namespace[step["function"]](*args)
        if name == "answer":
            out, error = _check_predictions(value, torch, tokens.shape[0], k, n_classes)
            if out is None:  # then ``error`` says why
                raise ValueError(str(error).replace("predict", "answer", 1))
            return values, out
        value = torch.as_tensor(value)
        if value.dim() == 0 or value.shape[0] != tokens.shape[0]:
            raise ValueError(
                f"variable {name!r} must have one row per input ({tokens.shape[0]}), "
                f"got shape {list(value.shape)}"
            )
        values[name] = value
    raise AssertionError("unreachable")


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # do not wait for threads the submission may have left running
