"""Rows that storage tests build on (a module, not the conftest, so tests can import it)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from storage.models import Blob, Round, SlackUser, Submission

OPENS = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)


@dataclass
class Seed:
    user: SlackUser
    round: Round
    blob: Blob

    def submission(self, **overrides: object) -> Submission:
        values: dict[str, object] = dict(
            round_id=self.round.id,
            user_id=self.user.id,
            filename="solution.py",
            blob_sha256=self.blob.sha256,
        )
        values.update(overrides)
        return Submission(**values)


def make_blob(content: bytes) -> Blob:
    return Blob(sha256=hashlib.sha256(content).hexdigest(), size=len(content), content=content)
