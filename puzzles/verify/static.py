"""Static scan of a submission, before anything runs: bound its embedded data, measure its size.

A solution is code, not data: a ``predict`` that carries a copy of the public weights (base64 in a
string, a float table) would replicate the model without explaining it. This module reads the
submission with :mod:`ast` only (it never executes it) and

* **canonicalises** it: the code that runs in the sandbox is ``ast.unparse`` of the parsed tree with
  docstrings (every bare string statement) removed. Comments, docstrings, blank lines and spacing
  therefore never reach the running code (not as ``__doc__``, not by reading its own file, not as
  line numbers), so they are free and cannot smuggle data in;
* **bounds literal data** in what remains: every constant counts (strings and bytes by their UTF-8
  length, so f-string parts and concatenated pieces add up; an int by the bytes its value needs, so
  a long int literal counts in full; a float 8 bytes, a complex 16), inside lists, tables and
  ``bytes([...])`` alike. More than the puzzle's ``max_literal_bytes`` (default 2048) is refused;
* **measures the description length** (``compactness``): the LZMA-compressed size of the canonical
  code. Identifiers and code structure could also carry data, so more than ``max_description_bytes``
  (default 8192: a shipped weight file compresses to at least 16 KB, a reference solution to under
  1.7 KB, sorted_list's fitted tables; the others under 500 bytes) is refused as well.
"""

from __future__ import annotations

import ast
import lzma
from dataclasses import dataclass

from puzzles.verify.submission import SubmissionError

DEFAULT_MAX_LITERAL_BYTES = 2048
DEFAULT_MAX_DESCRIPTION_BYTES = 8192
# a 1 MB dictionary covers the largest upload; preset 9's 64 MB would only cost set-up time
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20}]


class EmbeddedDataError(SubmissionError):
    """The submission carries more literal data (or is longer) than the puzzle allows."""


@dataclass(frozen=True)
class StaticReport:
    canonical_source: str
    """What the sandbox runs: the parsed code re-emitted without comments or docstrings."""
    literal_bytes: int
    """Bytes of literal data (all constants) in the canonical code."""
    largest_literal_bytes: int
    largest_literal_line: int | None
    """Line in the uploaded source of the largest literal (a list or table counts as one)."""
    description_bytes: int
    """Compressed size of the canonical code: the submission's description length."""
    max_literal_bytes: int
    max_description_bytes: int

    def to_json(self) -> dict[str, int | None]:
        return {
            "literal_bytes": self.literal_bytes,
            "max_literal_bytes": self.max_literal_bytes,
            "largest_literal_bytes": self.largest_literal_bytes,
            "largest_literal_line": self.largest_literal_line,
            "description_bytes": self.description_bytes,
            "max_description_bytes": self.max_description_bytes,
        }


def constant_bytes(value: object) -> int:
    """How many bytes of data one constant carries."""
    if value is None or value is Ellipsis or isinstance(value, bool):
        return 0
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, int):
        return max(1, (abs(value).bit_length() + 7) // 8)
    if isinstance(value, float):
        return 8
    if isinstance(value, complex):
        return 16
    return 8  # nothing else is a constant today; count it rather than let it through


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


class _StripDocstrings(ast.NodeTransformer):
    """Drop bare string statements (docstrings and string "comments"): they do nothing when run."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if isinstance(body, list) and body and all(isinstance(s, ast.stmt) for s in body):
                kept = [s for s in body if not _is_docstring(s)]
                if not kept and not isinstance(node, ast.Module):
                    kept = [ast.Pass()]  # a block may not be empty (``finally:`` included)
                setattr(node, name, kept)
        return node


def _literal_groups(tree: ast.AST) -> list[tuple[int, int]]:
    """``(bytes, line)`` per outermost literal-bearing expression: a table of numbers is one group,
    so the message can point at it; every constant is counted exactly once."""
    groups: list[tuple[int, int]] = []

    def size(node: ast.AST) -> int:
        return sum(constant_bytes(n.value) for n in ast.walk(node) if isinstance(n, ast.Constant))

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            groups.append((constant_bytes(node.value), getattr(node, "lineno", 0)))
            return
        if isinstance(
            node,
            ast.List | ast.Tuple | ast.Set | ast.Dict | ast.JoinedStr | ast.BinOp | ast.UnaryOp,
        ):
            # a container, an f-string or an arithmetic of literals: one group
            groups.append((size(node), getattr(node, "lineno", 0)))
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return groups


def description_length(canonical_source: str) -> int:
    """LZMA (raw, preset 9e) compressed size of the canonical code, in bytes."""
    return len(
        lzma.compress(
            canonical_source.encode("utf-8"), format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS
        )
    )


def scan_source(
    source: str,
    *,
    max_literal_bytes: int = DEFAULT_MAX_LITERAL_BYTES,
    max_description_bytes: int = DEFAULT_MAX_DESCRIPTION_BYTES,
) -> StaticReport:
    """Canonicalise and measure ``source``; raise :class:`EmbeddedDataError` past either bound.

    Parses only: nothing of the submission is executed here.
    """
    try:
        tree = ast.fix_missing_locations(_StripDocstrings().visit(ast.parse(source)))
        groups = _literal_groups(tree)  # line numbers are still those of the upload
        canonical = ast.unparse(tree) + "\n"
    except SyntaxError as exc:
        raise SubmissionError(f"Syntax error at line {exc.lineno}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise SubmissionError(f"The source could not be parsed: {type(exc).__name__}") from None
    total = sum(b for b, _ in groups)
    largest, line = max(groups, default=(0, None))
    report = StaticReport(
        canonical_source=canonical,
        literal_bytes=total,
        largest_literal_bytes=largest,
        largest_literal_line=line if largest else None,
        description_bytes=description_length(canonical),
        max_literal_bytes=max_literal_bytes,
        max_description_bytes=max_description_bytes,
    )
    if total > max_literal_bytes:
        where = f"; the largest ({largest:,} bytes) is on line {line}" if line else ""
        raise EmbeddedDataError(
            f"The submission embeds {total:,} bytes of literal data (strings, bytes, numbers); "
            f"this puzzle allows at most {max_literal_bytes:,} (max_literal_bytes){where}. "
            "A solution is code that explains the model, not a copy of its weights or outputs: "
            "compute tables instead of pasting them. Comments and docstrings do not count."
        )
    if report.description_bytes > max_description_bytes:
        raise EmbeddedDataError(
            f"The submission's code compresses to {report.description_bytes:,} bytes; this "
            f"puzzle allows at most {max_description_bytes:,} (max_description_bytes). A solution "
            "this long carries data, not an explanation. Comments and docstrings do not count."
        )
    return report


def limits_from_config(config: dict) -> dict[str, int]:
    """The two bounds from a puzzle's ``[verify]`` table, defaults filled in."""
    return {
        "max_literal_bytes": int(config.get("max_literal_bytes", DEFAULT_MAX_LITERAL_BYTES)),
        "max_description_bytes": int(
            config.get("max_description_bytes", DEFAULT_MAX_DESCRIPTION_BYTES)
        ),
    }
