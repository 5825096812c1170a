"""The roster: who exists, which roles they hold, who reports to whom, and their secrets.

``load_roster`` writes a roster file, read and checked by ``kernel.roster_file``, in the
caller's session.  Secrets are stored only as salted scrypt hashes
(``brokerflow.kernel.passwords``).  ``authenticate`` is the one secret check every entry
point uses (command line, archive page, approval forms); ``check_secret`` wraps it for a
whole entry point, recording failures for the lockout.  Every roster change (load, disable)
is audited; a user who left (``left_on``) loses every right at once; the last admin stays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, delete, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.db import read_session
from brokerflow.kernel.errors import AccessDenied, AuthenticationFailed, BadInput, NotFound
from brokerflow.kernel.identity import ADMIN_ROLE, UserView
from brokerflow.kernel.models import LoginFailure, User, UserRole
from brokerflow.kernel.passwords import hash_secret, spend_a_secret_check, verify_secret
from brokerflow.kernel.roster_file import RosterRow, parse_roster_bytes
from brokerflow.kernel.settings import load_settings
from brokerflow.kernel.totp import code_refusal

LOCKOUT_FAILURES = 5  # failed secret checks within the window lock the user (or address) ...
LOCKOUT_WINDOW = timedelta(minutes=15)  # ... until the oldest of them is this old
ROSTER_AUDIT_KEY = "roster"


def read_roster_file(path: Path) -> bytes:
    """A roster file's bytes; ``BadInput`` when it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BadInput("no such file", file=str(path)) from None
    except OSError as exc:
        raise BadInput(f"cannot read the file: {exc.strerror}", file=str(path)) from None


def roster_is_empty(session: Session) -> bool:
    return session.exec(select(User.user_id).limit(1)).first() is None


def load_roster(
    session: Session, *, path: Path, actor: UserView | None
) -> list[RosterRow]:
    """Parse ``path`` and upsert its users and roles; the caller commits.

    The first load into an empty roster is open; any later load needs an ``admin`` actor.
    """
    if not roster_is_empty(session) and (actor is None or ADMIN_ROLE not in actor.roles):
        raise AccessDenied("loading a roster into a non-empty database needs role 'admin'")
    data = read_roster_file(path)
    known = frozenset(session.exec(select(User.user_id)).all())
    rows = parse_roster_bytes(data, file=str(path), known_user_ids=known)
    added = sorted(r.user_id for r in rows if r.user_id not in known)
    for r in rows:
        user = session.get(User, r.user_id)
        if user is None:
            assert r.secret is not None
            user = User(user_id=r.user_id, name=r.name, branch=r.branch, secret_hash="")
        user.name, user.branch, user.team, user.supervisor_id = (
            r.name, r.branch, r.team, r.supervisor_id,
        )
        if r.secret is not None:
            user.secret_hash = hash_secret(r.secret)
        session.add(user)
        session.exec(delete(UserRole).where(col(UserRole.user_id) == r.user_id))
        session.flush()
        for role in sorted(r.roles):
            session.add(UserRole(user_id=r.user_id, role=role))
    session.flush()
    if known and not active_admins(session):
        raise BadInput("this roster takes role 'admin' from the last active admin; "
                       "keep one admin", file=str(path), column="roles")
    append_audit(session, actor_id=actor.user_id if actor else "(first load)",
                 action="roster-loaded", request_key=ROSTER_AUDIT_KEY,
                 details={"file": path.name, "sha256": hashlib.sha256(data).hexdigest(),
                          "users": len(rows), "added": added,
                          "changed": sorted(r.user_id for r in rows if r.user_id in known),
                          "secrets_set": sorted(r.user_id for r in rows if r.secret)})
    return rows


def active_admins(session: Session, *, today: date | None = None) -> list[str]:
    """The users holding role ``admin`` who have not left."""
    day = today or date.today()
    admins = session.exec(select(User).join(UserRole, col(UserRole.user_id) == User.user_id)
                          .where(UserRole.role == ADMIN_ROLE)).all()
    return sorted(u.user_id for u in admins if u.left_on is None or u.left_on > day)


def branch_staff(session: Session, *, branch: str, roles: Iterable[str],
                 on: date) -> dict[str, str]:
    """The users of ``branch`` holding any of ``roles`` who had not left on ``on``
    (user id → name)."""
    found: dict[str, str] = {}
    for user in session.exec(
            select(User).join(UserRole, UserRole.user_id == User.user_id)  # type: ignore[arg-type]
            .where(User.branch == branch, col(UserRole.role).in_(list(roles)))):
        if user.left_on is None or user.left_on > on:
            found[user.user_id] = user.name
    return found


def disable_user(session: Session, *, user_id: str, left_on: date, actor: UserView,
                 reason: str) -> None:
    """A user leaves: from ``left_on`` on they cannot log in, sign or read (admin only;
    never the last active admin; audited).  The caller commits."""
    if ADMIN_ROLE not in actor.roles:
        raise AccessDenied(f"{actor.user_id} may not disable users: that needs role 'admin'")
    if not reason.strip():
        raise BadInput("a reason is required", column="--reason")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r} on the roster")
    user.left_on = left_on
    user.updated_at = utcnow()
    session.add(user)
    session.flush()
    if not active_admins(session, today=left_on):
        raise AccessDenied(f"{user_id} is the last active admin and cannot be disabled; "
                           "make another user admin first")
    append_audit(session, actor_id=actor.user_id, action="user-disabled",
                 request_key=ROSTER_AUDIT_KEY,
                 details={"user": user_id, "left_on": left_on.isoformat(),
                          "reason": reason.strip()})


def get_user_view(session: Session, user_id: str) -> UserView | None:
    user = session.get(User, user_id)
    if user is None:
        return None
    roles = session.exec(select(UserRole.role).where(UserRole.user_id == user_id)).all()
    return UserView(
        user_id=user.user_id, name=user.name, branch=user.branch, team=user.team,
        supervisor_id=user.supervisor_id, roles=frozenset(roles),
    )


def active_user_view(session: Session, user_id: str, *,
                     today: date | None = None) -> UserView | None:
    """``get_user_view`` for someone acting now: None for an unknown user or one who left."""
    user = session.get(User, user_id)
    if user is None or (user.left_on is not None and user.left_on <= (today or date.today())):
        return None
    return get_user_view(session, user_id)


def authenticate(session: Session, *, user_id: str, secret: str, address: str = "",
                 now: datetime | None = None) -> UserView:
    """The roster user for ``user_id`` if ``secret`` verifies; else AuthenticationFailed.

    Refused as well: a user who has left (``left_on`` reached), and a user or an address
    locked out by ``LOCKOUT_FAILURES`` failures within ``LOCKOUT_WINDOW`` (checked before the
    secret, so a locked account cannot be probed).  Reads only; ``check_secret`` records.
    """
    moment = now or utcnow()
    locked = lockout_until(session, user_id=user_id, address=address, now=moment)
    if locked is not None:
        spend_a_secret_check(secret)
        raise AuthenticationFailed(f"{user_id!r} is locked out after {LOCKOUT_FAILURES} failed "
                                   f"attempts; try again after {locked:%H:%M} UTC")
    user = session.get(User, user_id)
    if user is None:
        spend_a_secret_check(secret)  # unknown ids are not told apart by timing
        raise AuthenticationFailed(f"unknown user {user_id!r} or wrong secret")
    if not verify_secret(secret, user.secret_hash):
        raise AuthenticationFailed(f"unknown user {user_id!r} or wrong secret")
    if user.left_on is not None and user.left_on <= moment.date():
        raise AuthenticationFailed(f"{user_id!r} left on {user.left_on.isoformat()}: "
                                   "no rights any more")
    view = get_user_view(session, user_id)
    assert view is not None
    return view


def lockout_until(session: Session, *, user_id: str, address: str,
                  now: datetime) -> datetime | None:
    """When the lockout of ``user_id`` (or of ``address``) ends; None when not locked."""
    since = now - LOCKOUT_WINDOW
    ends: list[datetime] = []
    for column, value in ((LoginFailure.user_id, user_id), (LoginFailure.address, address)):
        if not value:
            continue
        times = session.exec(select(LoginFailure.at).where(column == value,
                                                           col(LoginFailure.at) > since)
                             .order_by(col(LoginFailure.at).desc())
                             .limit(LOCKOUT_FAILURES)).all()
        if len(times) >= LOCKOUT_FAILURES:
            ends.append(min(times) + LOCKOUT_WINDOW)
    return max(ends) if ends else None


def record_login_failure(session: Session, *, user_id: str, address: str, channel: str,
                         reason: str) -> None:
    """Count a failed secret check towards the lockout and audit it; the caller commits."""
    session.add(LoginFailure(user_id=user_id[:64], address=address[:64]))
    append_audit(session, actor_id=user_id[:64] or "(none)", action="login-refused",
                 request_key=f"user:{user_id}"[:64],
                 details={"channel": channel, "address": address, "reason": reason})
    moment = utcnow()
    prune = moment - 4 * LOCKOUT_WINDOW  # nothing older counts; the audit keeps the history
    session.exec(delete(LoginFailure).where(col(LoginFailure.at) < prune))


def check_secret(engine: Engine, *, user_id: str, secret: str, channel: str,
                 address: str = "") -> UserView:
    """``authenticate`` for one entry point (``channel``: cli, web, form): a refusal is
    recorded for the lockout and audited in its own transaction, then raised."""
    try:
        with read_session(engine) as session:
            return authenticate(session, user_id=user_id, secret=secret, address=address)
    except AuthenticationFailed as exc:
        with Session(engine) as session:
            record_login_failure(session, user_id=user_id, address=address, channel=channel,
                                 reason=str(exc))
            session.commit()
        raise


def identify(engine: Engine, *, user_id: str, secret: str) -> UserView | None:
    """The signer of an approval form, or None (never raises, never logs the secret).

    Outside development mode the form's secret field carries a one-time code
    (``kernel.totp``), which counts once; static secrets only log in.  In development mode
    (``BROKERFLOW_DEV=1``) the static secret signs.  Refusals count towards the lockout."""
    if not user_id:
        return None
    settings = load_settings(check_secrets=False)
    if settings.dev:
        try:
            return check_secret(engine, user_id=user_id, secret=secret, channel="form")
        except AuthenticationFailed:
            return None
    return check_code(engine, user_id=user_id, code=secret, key=settings.totp_key)


def check_code(engine: Engine, *, user_id: str, code: str, key: str) -> UserView | None:
    """The user when ``code`` is their current, unused one-time code (it is then used up);
    None after recording the refusal (lockout, audit)."""
    moment = utcnow()
    with read_session(engine) as session:
        locked = lockout_until(session, user_id=user_id, address="", now=moment)
    reason = f"{user_id!r} is locked out" if locked else ""
    if not reason:
        with Session(engine) as session:
            view = active_user_view(session, user_id, today=moment.date())
            refusal = (code_refusal(session, user_id=user_id, code=code, key=key, now=moment)
                       if view is not None else "unknown user or one who left")
            if refusal is None:
                session.commit()  # the code's time step is used up
                return view
            reason = refusal
    with Session(engine) as session:
        record_login_failure(session, user_id=user_id, address="", channel="form",
                             reason=reason)
        session.commit()
    return None


def subordinate_ids(session: Session, user_id: str) -> set[str]:
    """Everyone whose reporting line reaches ``user_id`` (transitively)."""
    links = session.exec(select(User.user_id, User.supervisor_id)).all()
    children: dict[str, list[str]] = {}
    for uid, sup in links:
        if sup:
            children.setdefault(sup, []).append(uid)
    found: set[str] = set()
    stack = list(children.get(user_id, []))
    while stack:
        uid = stack.pop()
        if uid not in found:
            found.add(uid)
            stack.extend(children.get(uid, []))
    return found

