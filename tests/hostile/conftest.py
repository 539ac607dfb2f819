"""Print how many hostile cases ran, as whom and under which limits (root or unprivileged)."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    summary = getattr(config, "hostile_summary", None)
    if summary:
        terminalreporter.write_line(
            f"hostile suite: {summary['cases']} cases ran in bubblewrap as {summary['user']}, "
            f"limits by {summary['limits']}"
        )
