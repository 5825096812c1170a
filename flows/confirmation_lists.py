"""CML (客户确认月度清单, seed 002 第二十一条): per CM, the clients whose attribution became
effective in a month, archived by the monthly closing just before it computes pay."""

from collections import defaultdict

from sqlmodel import col, select

from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.flows.archive_document import archive_step
from brokerflow.kernel.calendar import Month, local_minute, month_end
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import NotFound
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.idnumbers import mask_last4
from brokerflow.kernel.models import Attribution, ClientIdentity, User, UserRole
from brokerflow.kernel.roster import get_user_view


def archive_confirmation_lists(archive: Archive, *, branch: str, month: str) -> list[str]:
    """CML (seed 002 第二十一条): per CM, the clients whose attribution became effective in
    ``month``; returns the serials (archiving twice returns the same ones)."""
    start = month_end(Month.parse(month).minus(1), archive.zone)
    end = month_end(month, archive.zone)
    by_cm: dict[str, list[dict[str, str]]] = defaultdict(list)
    with new_session(archive.engine) as session:
        rows = session.exec(select(Attribution, ClientIdentity).join(
            ClientIdentity, ClientIdentity.id_hash == Attribution.id_hash)  # type: ignore[arg-type]
            .where(Attribution.branch == branch, col(Attribution.effective_at).is_not(None))
            .order_by(col(Attribution.effective_at))).all()
        names = {u.user_id: u.name for u in session.exec(select(User))}
        clerk_id = session.exec(
            select(User.user_id).join(UserRole, UserRole.user_id == User.user_id)  # type: ignore[arg-type]
            .where(User.branch == branch, UserRole.role == "trading_manager")
            .order_by(User.user_id)).first()
        actor: UserView | None = get_user_view(session, clerk_id) if clerk_id else None
    for attribution, identity in rows:
        assert attribution.effective_at is not None
        at = attribution.effective_at
        if start <= at < end:
            by_cm[attribution.cm_id].append({
                "name": identity.name, "masked_id": mask_last4(identity.id_last4),
                "effective_at": local_minute(at, archive.zone),
                "asset_size": attribution.asset_size})
    if by_cm and actor is None:
        raise NotFound(f"branch {branch} has no trading_manager on the roster")
    serials = []
    for cm_id, clients in sorted(by_cm.items()):
        assert actor is not None
        subject = f"{month} 客户确认清单：{names.get(cm_id, cm_id)}"
        data: dict[str, object] = {
            "branch": branch, "subject": subject,
            "body": {"cm_id": cm_id, "cm_name": names.get(cm_id, cm_id), "month": month,
                     "clients": clients},
        }
        spec = DocumentSpec(branch=branch, doc_type="CML", subject=subject,
                            subject_key=f"cml:{branch}:{month}:{cm_id}", cm_id=cm_id,
                            month=month, source=f"confirmation list {month}")
        serials.append(archive_step(archive, spec, data, actor=actor))
    return serials

