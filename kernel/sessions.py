"""Server-side sessions of the archive page: the cookie holds a random token, the database its
SHA-256.  Keyword-only functions taking a ``Session``; the caller commits."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlmodel import Session, col, update

from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import WebSession
from brokerflow.kernel.roster import active_user_view


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def start_web_session(session: Session, *, user_id: str, address: str) -> str:
    """A new session for ``user_id``; the token to put in the (signed) cookie."""
    token = secrets.token_urlsafe(32)
    session.add(WebSession(id=_digest(token), user_id=user_id, address=address[:64]))
    return token


def session_user(session: Session, *, token: str, max_age: timedelta) -> UserView | None:
    """The user of a live session: not ended, younger than ``max_age``, user not left."""
    row = session.get(WebSession, _digest(token))
    if row is None or row.ended_at is not None or utcnow() - row.created_at > max_age:
        return None
    return active_user_view(session, row.user_id)


def end_web_session(session: Session, *, token: str) -> None:
    """Log out: the session's token is refused from now on, whoever holds the cookie."""
    session.exec(update(WebSession).where(col(WebSession.id) == _digest(token),
                                          col(WebSession.ended_at).is_(None))
                 .values(ended_at=utcnow()))

