"""The admin role: who holds it, granting and revoking it, and the audit log of admin actions.

Admins listed in settings (``CIRCUITBOARD_ADMINS``) always hold the role and cannot be revoked
from Slack (edit the setting instead); others are granted by an admin in Slack. Every admin
action, allowed or refused, is written to ``audit_log`` by ``authorize``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services import users
from storage.models import Admin, AuditLog


class NotAnAdmin(PermissionError):
    """The acting user lacks the admin role (the refusal is already audited)."""


class AdminError(ValueError):
    """An admin action that cannot be done as asked (message is user-facing)."""


def is_admin(*, session: Session, user_id: str, configured: Iterable[str] = ()) -> bool:
    if user_id in set(configured):
        return True
    return session.get(Admin, user_id) is not None


def list_admins(*, session: Session, configured: Iterable[str] = ()) -> list[str]:
    granted = session.scalars(select(Admin.user_id)).all()
    return sorted(set(configured) | set(granted))


def audit(
    *,
    session: Session,
    actor_id: str,
    action: str,
    allowed: bool,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    entry = AuditLog(
        actor_id=actor_id, action=action, target=target, allowed=allowed, details=details or {}
    )
    session.add(entry)
    session.flush()
    return entry


def authorize(
    *,
    session: Session,
    actor_id: str,
    action: str,
    configured: Iterable[str] = (),
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Audit the attempt and raise ``NotAnAdmin`` unless ``actor_id`` holds the role."""
    allowed = is_admin(session=session, user_id=actor_id, configured=configured)
    audit(
        session=session,
        actor_id=actor_id,
        action=action,
        allowed=allowed,
        target=target,
        details=details,
    )
    if not allowed:
        raise NotAnAdmin(f"{action} needs the admin role")


def grant(*, session: Session, actor_id: str, user_id: str) -> Admin:
    """Give ``user_id`` the admin role (idempotent). The caller authorizes ``actor_id`` first."""
    users.ensure(session=session, user_id=user_id)
    existing = session.get(Admin, user_id)
    if existing is not None:
        return existing
    admin = Admin(user_id=user_id, granted_by=actor_id)
    session.add(admin)
    session.flush()
    return admin


def revoke(
    *, session: Session, actor_id: str, user_id: str, configured: Iterable[str] = ()
) -> bool:
    """Take the role away; False if they did not hold it. Configured admins cannot be revoked."""
    if user_id in set(configured):
        raise AdminError(f"<@{user_id}> is an admin from settings (CIRCUITBOARD_ADMINS)")
    if user_id == actor_id:
        raise AdminError("you cannot revoke your own admin role")
    admin = session.get(Admin, user_id)
    if admin is None:
        return False
    session.delete(admin)
    session.flush()
    return True


def recent_audit(*, session: Session, limit: int = 20) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)).all())
