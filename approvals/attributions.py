"""Client attribution (客户归属确认, seed 001 第二十七条, 第三十一条) in the database.

A client belongs to one CM at a time.  A second claim on a client with a pending or effective
attribution is a ``conflict`` that only the trading dept manager can resolve (keep / transfer).
A transfer is a new attribution; the old one ends when the new one becomes effective.
Keyword-only functions taking a ``Session``; the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlmodel import Session, col, or_, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.errors import AccessDenied, BadInput, NotFound
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.idnumbers import (
    InvalidIdNumber,
    keyed_hash,
    mask_last4,
    validate_id_number,
)
from brokerflow.kernel.models import ArchiveEntry, Attribution, ClientIdentity, User
from brokerflow.kernel.vocabulary import AttributionStatus

LIVE = (AttributionStatus.PENDING, AttributionStatus.CONFLICT, AttributionStatus.EFFECTIVE)


def request_key(attribution_id: int) -> str:
    return f"attribution:{attribution_id}"


def signed_key(attribution_id: int) -> str:
    """The subject key of the CNF archived when the chain ends (one per attribution)."""
    return f"{request_key(attribution_id)}:signed"


def preregister(
    session: Session, *, registrar: UserView, cm_id: str, client_name: str, id_number: str,
    asset_size: str, hash_key: str,
) -> Attribution:
    """预约登记 by back-office support; flags a conflict with any live claim on the client."""
    if "backoffice" not in registrar.roles:
        raise AccessDenied(f"{registrar.user_id} is not back-office support (后勤支持岗)")
    try:
        number = validate_id_number(id_number)
    except InvalidIdNumber as exc:
        raise BadInput(f"ID number {exc}", column="--id-number") from None
    name = client_name.strip()
    if not name or len(name) > 128:
        raise BadInput("client name must be 1-128 characters", column="--client-name")
    try:
        assets = Decimal(asset_size)
    except InvalidOperation:
        raise BadInput(f"asset size is not a number: {asset_size!r}",
                       column="--asset-size") from None
    if not assets.is_finite() or assets < 0:
        raise BadInput("asset size must be a number ≥ 0", column="--asset-size")
    cm = session.get(User, cm_id)
    if cm is None:
        raise BadInput(f"unknown CM {cm_id!r}: not on the roster", column="--cm")
    if cm.branch != registrar.branch:
        raise BadInput(f"CM {cm_id} belongs to branch {cm.branch}, not {registrar.branch}",
                       column="--cm")
    id_hash = keyed_hash(number, key=hash_key)
    identity = session.get(ClientIdentity, id_hash)
    if identity is None:
        identity = ClientIdentity(id_hash=id_hash, name=name, id_last4=number[-4:])
        session.add(identity)
        session.flush()
    live = session.exec(select(Attribution).where(
        Attribution.id_hash == id_hash, col(Attribution.status).in_(LIVE))
        .order_by(col(Attribution.id))).all()
    if any(a.cm_id == cm_id for a in live):
        same = next(a for a in live if a.cm_id == cm_id)
        raise BadInput(f"this client already has a {same.status} attribution to {cm_id} "
                       f"(#{same.id})", column="--cm")
    attribution = Attribution(
        id_hash=id_hash, cm_id=cm_id, branch=cm.branch, team=cm.team,
        asset_size=f"{assets:.2f}", registered_by=registrar.user_id,
        status=AttributionStatus.CONFLICT if live else AttributionStatus.PENDING,
        conflict_with=live[0].id if live else None,
    )
    session.add(attribution)
    session.flush()
    assert attribution.id is not None
    append_audit(session, actor_id=registrar.user_id, action="preregistered",
                 request_key=request_key(attribution.id),
                 details={"cm": cm_id, "asset_size": attribution.asset_size,
                          "client": f"…{number[-4:]}", "status": attribution.status,
                          "conflict_with": attribution.conflict_with})
    return attribution


def get_attribution(session: Session, *, attribution_id: int) -> Attribution:
    attribution = session.get(Attribution, attribution_id)
    if attribution is None:
        raise NotFound(f"no attribution #{attribution_id}")
    return attribution


def resolve_conflict(session: Session, *, attribution: Attribution, resolution: str,
                     actor_id: str, reason: str) -> None:
    """keep: the existing attribution stays and this claim is rejected; transfer: this claim
    may become effective, ending the existing one at that moment."""
    assert attribution.id is not None
    attribution.resolution = resolution
    if resolution == "keep":
        attribution.status = AttributionStatus.REJECTED
    else:
        attribution.status = AttributionStatus.PENDING
    session.add(attribution)
    append_audit(session, actor_id=actor_id, action="conflict-resolved",
                 request_key=request_key(attribution.id),
                 details={"resolution": resolution, "reason": reason,
                          "conflict_with": attribution.conflict_with})


def make_effective(session: Session, *, attribution: Attribution, client_id: str,
                   actor_id: str, at: datetime | None = None) -> None:
    """The trading dept manager enters the attribution: it counts from this moment."""
    assert attribution.id is not None
    moment = at or utcnow()
    taken = session.exec(select(Attribution).where(
        Attribution.client_id == client_id,
        Attribution.status == AttributionStatus.EFFECTIVE,
        Attribution.id_hash != attribution.id_hash)).first()
    if taken is not None:
        raise BadInput(f"account {client_id} already belongs to another client", column="client_id")
    for old in session.exec(select(Attribution).where(
            Attribution.id_hash == attribution.id_hash,
            Attribution.status == AttributionStatus.EFFECTIVE)):
        old.status, old.ended_at = "ended", moment
        session.add(old)
        append_audit(session, actor_id=actor_id, action="attribution-ended",
                     request_key=request_key(old.id or 0),
                     details={"ended_by": attribution.id, "cm": old.cm_id})
    attribution.status, attribution.effective_at = "effective", moment
    attribution.client_id = client_id
    session.add(attribution)
    identity = session.get(ClientIdentity, attribution.id_hash)
    assert identity is not None
    identity.client_id = client_id
    session.add(identity)
    append_audit(session, actor_id=actor_id, action="attribution-effective",
                 request_key=request_key(attribution.id), at=moment,
                 details={"cm": attribution.cm_id, "client_id": client_id})


def flag_malicious(session: Session, *, client_id: str, reason: str, actor: UserView) -> None:
    """恶意开户: the client never counts for anyone (the trading dept manager of the branch the
    client is attributed in, with a reason; audited)."""
    if "trading_manager" not in actor.roles:
        raise AccessDenied(f"{actor.user_id} is not a trading dept manager")
    if not reason.strip():
        raise BadInput("a reason is required", column="--reason")
    identity = session.exec(select(ClientIdentity).where(
        ClientIdentity.client_id == client_id)).first()
    if identity is None:
        raise NotFound(f"no attributed client with account {client_id}")
    branches = set(session.exec(select(Attribution.branch).where(
        Attribution.id_hash == identity.id_hash,
        col(Attribution.status).in_(LIVE + (AttributionStatus.ENDED,)))).all())
    if actor.branch not in branches:
        raise AccessDenied(f"{actor.user_id} is the trading dept manager of {actor.branch}; "
                           f"client {client_id} is attributed in {', '.join(sorted(branches))}")
    identity.malicious, identity.malicious_reason = True, reason.strip()
    session.add(identity)
    append_audit(session, actor_id=actor.user_id, action="client-malicious",
                 request_key=f"client:{client_id}",
                 details={"reason": reason.strip(), "branch": actor.branch})


@dataclass(frozen=True)
class EffectiveAttributions:
    """Which CM each account counted for, and when; and the accounts that never count."""

    spans: Mapping[str, tuple[tuple[str, datetime, datetime | None], ...]]
    malicious: frozenset[str]

    def counts(self, *, client_id: str, cm_id: str, at: datetime) -> bool:
        """Whether ``client_id`` counted for ``cm_id`` at the moment ``at`` (pure)."""
        if client_id in self.malicious:
            return False
        return any(cm == cm_id and start < at and (stop is None or stop >= at)
                   for cm, start, stop in self.spans.get(client_id, ()))


def effective_attributions(session: Session, *, branch: str) -> EffectiveAttributions:
    """The branch's attributions that ever became effective, and its malicious accounts."""
    spans: dict[str, list[tuple[str, datetime, datetime | None]]] = {}
    for a in session.exec(select(Attribution).where(
            Attribution.branch == branch, col(Attribution.effective_at).is_not(None))):
        if a.client_id and a.effective_at is not None:
            spans.setdefault(a.client_id, []).append(
                (a.cm_id, a.effective_at, a.ended_at))
    malicious = frozenset(i.client_id for i in session.exec(select(ClientIdentity).where(
        ClientIdentity.malicious == True)) if i.client_id)  # noqa: E712
    return EffectiveAttributions({k: tuple(v) for k, v in spans.items()}, malicious)


def signed_serial(session: Session, *, attribution_id: int) -> str:
    """The serial of the attribution's signed record (the CNF archived when its chain ended),
    or "" while none is archived."""
    serial = session.exec(select(ArchiveEntry.serial).where(
        ArchiveEntry.doc_type == "CNF",
        ArchiveEntry.subject_key == signed_key(attribution_id))).first()
    return serial or ""


def attribution_record(session: Session, attribution: Attribution) -> dict[str, object]:
    """An attribution as the command line shows it: the client's ID number masked."""
    identity = session.get(ClientIdentity, attribution.id_hash)
    return {
        "id": attribution.id, "client_id": attribution.client_id,
        "client_name": identity.name if identity else "",
        "id_number": mask_last4(identity.id_last4) if identity else "",
        "malicious": bool(identity and identity.malicious),
        "cm_id": attribution.cm_id, "branch": attribution.branch, "team": attribution.team,
        "status": attribution.status, "asset_size": attribution.asset_size,
        "conflict_with": attribution.conflict_with, "resolution": attribution.resolution,
        "confirmation_serial": attribution.confirmation_serial,
        "signed_serial": signed_serial(session, attribution_id=attribution.id or 0),
        "created_at": attribution.created_at.isoformat(),
        "effective_at": attribution.effective_at.isoformat() if attribution.effective_at
        else None,
        "ended_at": attribution.ended_at.isoformat() if attribution.ended_at else None,
    }


def find_attributions(session: Session, *, client_id: str | None = None,
                      cm_id: str | None = None, status: str | None = None,
                      effective_between: tuple[datetime, datetime] | None = None
                      ) -> list[Attribution]:
    """Attributions by account number (or ``#id`` given as digits), CM, status, and the
    window their attribution became effective in, ordered by id."""
    query = select(Attribution)
    if client_id is not None:
        matches = col(Attribution.client_id) == client_id
        if client_id.isdigit():
            matches = or_(matches, col(Attribution.id) == int(client_id))
        query = query.where(matches)
    if cm_id:
        query = query.where(Attribution.cm_id == cm_id)
    if status:
        query = query.where(Attribution.status == status)
    rows = list(session.exec(query.order_by(col(Attribution.id))))
    if effective_between is not None:
        start, end = effective_between
        rows = [a for a in rows if a.effective_at is not None
                and start <= a.effective_at < end]
    return rows
