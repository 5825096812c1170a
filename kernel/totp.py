"""One-time codes for signatures (RFC 6238 TOTP, ``pyotp``; SPEC §2.1 identity).

A user enrols once: a random seed, stored only encrypted under ``BROKERFLOW_TOTP_KEY`` (a key
outside the database), and shown once as a provisioning URI (and a QR code) for their
authenticator app.  Outside development mode a form is signed with a current code, not with
the static secret; a code counts once: its time step is recorded per user, so the same code
sent again within its window is refused.  Keyword-only functions taking a ``Session``; the
caller commits.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import exc as sa_exc
from sqlmodel import Session

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.errors import AccessDenied, NotFound
from brokerflow.kernel.identity import ADMIN_ROLE, UserView
from brokerflow.kernel.models import TotpUse, User

ISSUER = "brokerflow"
VALID_WINDOW = 1  # the step before and after count too (clock drift, typing time)


def _cipher(key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode("utf-8")).digest()))


def enrol(session: Session, *, user_id: str, actor: UserView, key: str) -> str:
    """A new seed for ``user_id`` (by themself or an admin; audited); the provisioning URI,
    to be shown once.  An earlier seed stops working."""
    if actor.user_id != user_id and ADMIN_ROLE not in actor.roles:
        raise AccessDenied(f"{actor.user_id} may enrol only themself (an admin may enrol "
                           "anyone)")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r} on the roster")
    seed = pyotp.random_base32()
    user.totp_seed = _cipher(key).encrypt(seed.encode()).decode()
    user.updated_at = utcnow()
    session.add(user)
    append_audit(session, actor_id=actor.user_id, action="totp-enrolled",
                 request_key=f"user:{user_id}"[:64], details={"user": user_id})
    return pyotp.TOTP(seed).provisioning_uri(name=user_id, issuer_name=ISSUER)


def code_refusal(session: Session, *, user_id: str, code: str, key: str,
                 now: datetime | None = None) -> str | None:
    """None when ``code`` is a current code of ``user_id`` not used before (it is recorded
    as used, in the caller's transaction); else why not."""
    user = session.get(User, user_id)
    if user is None or not user.totp_seed:
        return "no one-time code enrolled ('brokerflow roster totp USER')"
    try:
        seed = _cipher(key).decrypt(user.totp_seed.encode()).decode()
    except InvalidToken:
        return "the enrolled seed cannot be read with this BROKERFLOW_TOTP_KEY"
    totp = pyotp.TOTP(seed)
    moment = now or utcnow()
    text = code.strip()
    steps = [totp.timecode(moment) + offset for offset in range(-VALID_WINDOW, VALID_WINDOW + 1)]
    matched = next((step for step in steps
                    if len(text) == totp.digits and pyotp.utils.strings_equal(
                        text, totp.generate_otp(step))), None)
    if matched is None:
        return "wrong or expired one-time code"
    try:
        with session.begin_nested():
            session.add(TotpUse(user_id=user_id, step=matched))
    except sa_exc.IntegrityError:
        return "this one-time code was used already; wait for the next one"
    return None
