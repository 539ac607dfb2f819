"""Slack deliveries already handled (event ids, file ids), recorded on arrival.

Slack redelivers an event it thinks failed (``X-Slack-Retry-Num``: at once, after 1 and after 5
minutes) and, rarely, delivers one twice. The first delivery to arrive is processed, whatever its
retry number; later copies are acknowledged and ignored.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import ProcessedEvent


def first_delivery(*, session: Session, key: str) -> bool:
    """Record ``key``; True the first time, False if it was already recorded."""
    if session.get(ProcessedEvent, key) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(ProcessedEvent(key=key))
    except IntegrityError:
        return False
    return True
