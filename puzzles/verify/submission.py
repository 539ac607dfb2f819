"""Turn uploaded bytes (a ``.py`` file or an ``.ipynb`` notebook) into checked Python source.

Nothing here executes the submission: it is decoded, flattened and parsed only, so every problem
with the upload becomes a clear message before a sandbox is even started.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass

MAX_SUBMISSION_BYTES = 1_000_000
"""Uploads above this are refused (a solution is code, not data; notebooks with outputs stay small)."""

ALLOWED_SUFFIXES = (".py", ".ipynb")
MAX_NOTEBOOK_DEPTH = 64
"""A Jupyter notebook nests about 6 levels; deeper JSON is refused before any parser recurses."""
MAX_NOTEBOOK_CELLS = 5000


class SubmissionError(ValueError):
    """The upload cannot be verified; the message is shown to the participant as is."""


@dataclass(frozen=True)
class Submission:
    filename: str
    source: str
    """Plain Python source (a notebook's code cells joined, magics and shell escapes stripped)."""
    defines_predict: bool
    defines_circuit: bool


_MAGIC = re.compile(r"^\s*(%|!)")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest, counted without recursion."""
    depth = deepest = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _strip_ipython(cell: str) -> str:
    """Drop IPython-only lines: ``%magic``, ``!shell`` and whole ``%%cell`` magics."""
    lines = cell.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        return ""
    kept = []
    for line in lines:
        if _MAGIC.match(line):
            # keep line numbers stable so syntax errors point at the right cell line
            kept.append("")
            continue
        kept.append(line)
    return "\n".join(kept)


def notebook_to_source(text: str) -> str:
    """The code cells of a notebook, in order, as one script."""
    import nbformat

    _check_notebook_json(text)
    try:
        notebook = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for bad documents
        raise SubmissionError(
            f"The notebook could not be read by nbformat: {exc}".strip()
        ) from None
    chunks = []
    for index, cell in enumerate(notebook.cells):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        if not isinstance(source, str):
            raise SubmissionError(f"Notebook cell {index + 1} has malformed source.")
        chunks.append(f"# --- cell {index + 1} ---\n{_strip_ipython(source)}\n")
    if not chunks:
        raise SubmissionError("The notebook has no code cells.")
    return "\n".join(chunks)


def _check_notebook_json(text: str) -> None:
    """Refuse what is not a notebook's JSON before nbformat reads it (depth, size, cells)."""
    depth = json_depth(text)
    if depth > MAX_NOTEBOOK_DEPTH:
        raise SubmissionError(
            f"The notebook's JSON nests {depth} levels deep (a notebook needs fewer than "
            f"{MAX_NOTEBOOK_DEPTH}): it is not a Jupyter notebook this verifier accepts."
        )
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SubmissionError(
            f"The notebook is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    except (RecursionError, MemoryError):
        raise SubmissionError("The notebook's JSON is too deeply nested or too large.") from None
    if not isinstance(raw, dict) or "cells" not in raw:
        raise SubmissionError("The notebook has no cells: is it really a Jupyter .ipynb file?")
    if not isinstance(raw["cells"], list) or len(raw["cells"]) > MAX_NOTEBOOK_CELLS:
        raise SubmissionError(
            f"The notebook's cells must be a list of at most {MAX_NOTEBOOK_CELLS} cells."
        )


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        else:
            # names bound inside if/try/with blocks at module level count too
            for sub in ast.walk(node):
                if isinstance(sub, ast.FunctionDef | ast.ClassDef):
                    names.add(sub.name)
                elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.add(sub.id)
    return names


def load_submission(data: bytes, filename: str) -> Submission:
    """Decode, flatten and syntax-check an upload; raises :class:`SubmissionError` with a clear message."""
    name = (filename or "").strip()
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix not in ALLOWED_SUFFIXES:
        raise SubmissionError(
            f"Unsupported file type {suffix or '(none)'!r}: upload a .py file or a .ipynb notebook."
        )
    if len(data) > MAX_SUBMISSION_BYTES:
        raise SubmissionError(
            f"The file is {len(data) / 1e6:.1f} MB; the limit is {MAX_SUBMISSION_BYTES / 1e6:.1f} MB. "
            "Clear the notebook outputs or remove embedded data."
        )
    if not data.strip():
        raise SubmissionError("The file is empty.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError(
            f"The file is not UTF-8 text (invalid byte at offset {exc.start}); save it as UTF-8."
        ) from None
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise SubmissionError("The file contains NUL bytes: it is not a text file.")
    source = notebook_to_source(text) if suffix == ".ipynb" else text
    try:
        tree = ast.parse(source, filename=name)
    except SyntaxError as exc:
        where = f"line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
        line = (exc.text or "").strip()
        detail = f"\n    {line}" if line else ""
        raise SubmissionError(f"Syntax error at {where}: {exc.msg}{detail}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise SubmissionError(f"The source could not be parsed: {type(exc).__name__}") from None
    names = _top_level_names(tree)
    defines_predict = "predict" in names
    defines_circuit = "CIRCUIT" in names
    if not (defines_predict or defines_circuit or "HYPOTHESIS" in names):
        raise SubmissionError(
            "The submission defines none of `predict(tokens)`, `CIRCUIT` and `HYPOTHESIS`; "
            "define at least one."
        )
    return Submission(
        filename=name,
        source=source,
        defines_predict=defines_predict,
        defines_circuit=defines_circuit,
    )
