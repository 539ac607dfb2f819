"""The secret seeds a verification draws its held-out and hard sets from."""

from __future__ import annotations

import hashlib
import os
import secrets

from bot.settings import Settings


def hard_set_seed(settings: Settings, slug: str, round_id: int) -> int:
    """The hard set's secret seed: one per round, so a worker mines it once per round (seconds
    of forward passes) and every submission of the round is checked on the same mined set."""
    return secret_seed(settings, slug, salt=f"round:{round_id}:hardset")


def secret_seed(settings: Settings, slug: str, *, salt: str = "") -> int:
    """The held-out seed: the configured secret (else one kept in ``data_dir``), the puzzle and
    ``salt`` (the round and submission), so every submission gets a fresh secret draw and
    nothing one submission prints about its inputs helps a later one. Re-verifying the same
    submission draws the same set again.

    The fallback file suits one machine; workers on several machines need the same
    ``CIRCUITBOARD_VERIFICATION_SEED`` so a re-verification on another worker matches.
    """
    if settings.verification_seed is not None:
        secret = settings.verification_seed.get_secret_value()
    else:
        path = settings.ensure_data_dir() / "verification_seed"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(16))
        secret = path.read_text().strip()
    digest = hashlib.sha256(f"{secret}:{slug}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)
