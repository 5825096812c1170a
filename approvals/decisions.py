"""Decisions and waiting steps in SQL: what was signed, what is refused, where a request waits.

Keyword-only functions taking a ``Session``; the caller commits.  Every decision and refusal is
written with its audit row in the same transaction.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from brokerflow.approvals.chain import Decision, FormCheck
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import local_minute
from brokerflow.kernel.models import ApprovalDecision, AuditEvent, WaitingStep

#: Form fields every approval form has; the others are the step's own (``form_details``).
BASE_FORM_FIELDS = frozenset({"signer", "secret", "decision", "opinion",
                              "countersign_departments"})


def load_decisions(session: Session, *, request_key: str, revision: int,
                   zone: ZoneInfo) -> list[Decision]:
    """The counted decisions of one revision, in order; times as the branch reads them."""
    rows = session.exec(
        select(ApprovalDecision)
        .where(ApprovalDecision.request_key == request_key,
               ApprovalDecision.revision == revision)
        .order_by(col(ApprovalDecision.id))
    )
    return [
        Decision(step=r.step, signer_id=r.signer_id, role=r.role, decision=r.decision,
                 opinion=r.opinion, at=local_minute(r.decided_at, zone),
                 department=r.department,
                 departments=tuple(d for d in r.departments.split(";") if d),
                 details=tuple(sorted(json.loads(r.details or "{}").items())))
        for r in rows
    ]


def record_decision(
    session: Session, *, request_key: str, revision: int, step: str, signer_id: str,
    check: FormCheck, decision: str, opinion: str, details: dict[str, str] | None = None,
    form_key: str = "",
) -> ApprovalDecision:
    """Count a checked form and audit it (caller commits).

    ``form_key`` (the Prefect pause key the form answered) lets whoever sent the form find
    out what became of it.
    """
    row = ApprovalDecision(
        request_key=request_key, revision=revision, step=step, signer_id=signer_id,
        role=check.role, decision=decision, opinion=opinion.strip(),
        department=check.department, departments=";".join(check.departments),
        details=json.dumps(details or {}, ensure_ascii=False, sort_keys=True),
    )
    session.add(row)
    session.flush()
    append_audit(session, actor_id=signer_id, action="decision", request_key=request_key,
                 at=row.decided_at,
                 details={"revision": revision, "step": step, "role": check.role,
                          "decision": decision, "opinion": row.opinion,
                          "department": check.department, "departments": list(check.departments),
                          "details": details or {}, "decision_id": row.id,
                          "form": form_key})
    waiting = session.get(WaitingStep, request_key)
    if waiting is not None:
        session.delete(waiting)
    return row


def record_refusal(
    session: Session, *, request_key: str, revision: int, step: str, signer_id: str, reason: str,
    form_key: str = "",
) -> None:
    """Log a form that did not count (caller commits); signers see the reason next time."""
    append_audit(session, actor_id=signer_id or "(blank)", action="refused",
                 request_key=request_key,
                 details={"revision": revision, "step": step, "reason": reason,
                          "form": form_key})
    waiting = session.get(WaitingStep, request_key)
    if waiting is not None:
        waiting.last_refusal = reason
        session.add(waiting)


def mark_waiting(
    session: Session, *, request_key: str, revision: int, step: str, flow_run_id: str
) -> WaitingStep:
    """Record that the request waits on ``step`` (keeps the original ``since``)."""
    row = session.get(WaitingStep, request_key)
    if row is None or row.revision != revision or row.step != step:
        if row is not None:
            session.delete(row)
            session.flush()
        row = WaitingStep(request_key=request_key, revision=revision, step=step,
                          flow_run_id=flow_run_id)
        session.add(row)
    return row


def clear_waiting(session: Session, *, request_key: str) -> None:
    row = session.get(WaitingStep, request_key)
    if row is not None:
        session.delete(row)


def form_details(answer: Any) -> dict[str, str]:
    """The step-specific fields of a form answer, as text (the secret never among them)."""
    return {k: str(v) for k, v in answer.model_dump().items() if k not in BASE_FORM_FIELDS}


def cross_check_decisions(session: Session) -> list[str]:
    """Every counted decision against its audit row, and every audited decision against its
    counted row: a decision edited, added or deleted in the database alone is reported (the
    decisions drive the chains and the documents; the audit chain is keyed and anchored)."""
    problems: list[str] = []
    rows = {d.id: d for d in session.exec(select(ApprovalDecision))}
    seen: set[int] = set()
    for event in session.exec(select(AuditEvent).where(AuditEvent.action == "decision")
                              .order_by(col(AuditEvent.id))):
        try:
            content = json.loads(event.content)
            details = content["details"]
            decision_id = int(details["decision_id"])
        except (ValueError, KeyError, TypeError):
            problems.append(f"audit row {event.id}: a decision without its decision id")
            continue
        row = rows.get(decision_id)
        if row is None:
            problems.append(f"decision {decision_id} (audit row {event.id}) is missing from "
                            "the decisions table")
            continue
        seen.add(decision_id)
        recorded = {"request": row.request_key, "signer": row.signer_id,
                    "revision": row.revision, "step": row.step, "role": row.role,
                    "decision": row.decision, "opinion": row.opinion,
                    "department": row.department,
                    "departments": [d for d in row.departments.split(";") if d],
                    "at": row.decided_at.astimezone(UTC).isoformat()}
        audited = {"request": event.request_key, "signer": content.get("actor"),
                   "revision": details.get("revision"), "step": details.get("step"),
                   "role": details.get("role"), "decision": details.get("decision"),
                   "opinion": details.get("opinion"), "department": details.get("department"),
                   "departments": details.get("departments"), "at": content.get("at")}
        changed = sorted(k for k in recorded if recorded[k] != audited[k])
        if changed:
            problems.append(f"decision {decision_id} differs from its audit row {event.id} "
                            f"in {', '.join(changed)}")
    for missing in sorted(i for i in rows if i is not None and i not in seen):
        problems.append(f"decision {missing} has no audit row (added to the database alone)")
    return problems
