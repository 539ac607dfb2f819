"""Why a sandbox could not run a submission at all (never the submission's own failure)."""

from __future__ import annotations


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces, and unsandboxed runs were not allowed."""


class SandboxError(RuntimeError):
    """The sandbox itself failed to start (not the submission's fault)."""
