"""Pay rules take effect only after approval (seed 002 第二条; SPEC §8.3).

A ``pay_rules`` filing carries a policy TOML and the month it takes effect.  The policy is
validated when it is attached (nothing is written when it is bad); when the filing's chain ends
approved it becomes the branch's next active version, from that month on.  Versions are kept
forever and never edited.  Keyword-only functions taking a ``Session``; the caller commits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlmodel import Session, col, func, select

from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import Month, utcnow
from brokerflow.kernel.errors import BadInput, NotFound
from brokerflow.kernel.staff_models import PayRulesVersion
from brokerflow.payroll.policy import Policy, parse_policy

PENDING, ACTIVE = "pending", "active"
MAX_POLICY_BYTES = 64 * 1024
NOT_APPROVED = "policy not approved"  # what PAY says of a closing run on an explicit policy


@dataclass(frozen=True)
class PolicyChoice:
    """The policy a closing uses and what PAY prints about it."""

    text: str
    version: int | None = None
    filing_serial: str = ""
    result_serial: str = ""
    note: str = ""


def validate_pay_rules(text: str, *, effective_month: str, file: str) -> Policy:
    """The parsed policy, or ``BadInput`` naming the key (and the month option)."""
    try:
        Month.parse(effective_month)
    except ValueError:
        raise BadInput(f"effective month {effective_month!r} must be YYYY-MM",
                       column="--effective-month") from None
    if len(text.encode("utf-8")) > MAX_POLICY_BYTES:
        raise BadInput(f"a policy file is at most {MAX_POLICY_BYTES // 1024} KiB", file=file)
    return parse_policy(text, file=file)


def attach_pay_rules(session: Session, *, branch: str, filing_id: int, policy_text: str,
                     effective_month: str, file: str = "--policy") -> PayRulesVersion:
    """Attach a validated policy to the (new) ``pay_rules`` filing ``filing_id``: pending
    until its chain ends."""
    validate_pay_rules(policy_text, effective_month=effective_month, file=file)
    rules = PayRulesVersion(branch=branch, filing_id=filing_id, effective_month=effective_month,
                            policy=policy_text,
                            sha256=hashlib.sha256(policy_text.encode("utf-8")).hexdigest())
    session.add(rules)
    session.flush()
    return rules


def pay_rules_of_filing(session: Session, *, filing_id: int) -> PayRulesVersion | None:
    return session.exec(select(PayRulesVersion)
                        .where(PayRulesVersion.filing_id == filing_id)).first()


def settle_pay_rules(session: Session, *, filing_id: int, outcome: str, filing_serial: str,
                     result_serial: str) -> PayRulesVersion | None:
    """The filing's chain ended with ``outcome``: approved pay rules become the branch's next
    version (audited); otherwise they never take effect.  None when the filing carries none."""
    rules = pay_rules_of_filing(session, filing_id=filing_id)
    if rules is None or rules.status != PENDING:
        return rules
    rules.filing_serial, rules.result_serial = filing_serial, result_serial
    if outcome == "approved":
        latest = session.exec(select(func.max(PayRulesVersion.version))
                              .where(PayRulesVersion.branch == rules.branch)).one()
        rules.version = int(latest or 0) + 1
        rules.status = ACTIVE
        rules.approved_at = utcnow()
        append_audit(session, actor_id="system", action="pay-rules-active",
                     request_key=f"filing:{filing_id}",
                     details={"branch": rules.branch, "version": rules.version,
                              "effective_month": rules.effective_month,
                              "sha256": rules.sha256, "filing": filing_serial,
                              "approval": result_serial})
    else:
        rules.status = outcome
    session.add(rules)
    return rules


def active_pay_rules(session: Session, *, branch: str, month: str) -> PayRulesVersion | None:
    """The version in force for ``month``: of the approved versions effective by then, the
    one with the latest effective month (the later approval when two share it)."""
    return session.exec(
        select(PayRulesVersion).where(PayRulesVersion.branch == branch,
                                      PayRulesVersion.status == ACTIVE,
                                      PayRulesVersion.effective_month <= month)
        .order_by(col(PayRulesVersion.effective_month).desc(),
                  col(PayRulesVersion.version).desc())).first()


def pay_rules_versions(session: Session, *, branch: str) -> list[PayRulesVersion]:
    """Every version of ``branch`` (pending and refused ones too), oldest first."""
    return list(session.exec(select(PayRulesVersion).where(PayRulesVersion.branch == branch)
                             .order_by(col(PayRulesVersion.id))))


def get_pay_rules(session: Session, *, branch: str, version: int) -> PayRulesVersion:
    rules = session.exec(select(PayRulesVersion).where(
        PayRulesVersion.branch == branch, PayRulesVersion.version == version)).first()
    if rules is None:
        raise NotFound(f"{branch} has no pay rules version {version}")
    return rules


def missing_pay_rules_message(branch: str, month: str) -> str:
    """Why a closing without approved pay rules is refused, and what to do."""
    return (f"{branch} has no approved pay rules in force for {month}: file them with "
            f"'brokerflow filing submit --branch {branch} --kind pay_rules --policy FILE "
            f"--effective-month {month} --subject …' and have the chain approve them "
            "(an admin may close with an explicit policy: 'brokerflow payroll close "
            "--policy FILE', and PAY then says the policy is not approved)")


def choose_policy(session: Session, *, branch: str, month: str,
                  explicit: str | None) -> PolicyChoice:
    """The policy for a closing: an explicit one (PAY says "policy not approved"), else the
    approved version in force, else ``BadInput`` saying how to file one."""
    if explicit is not None:
        return PolicyChoice(text=explicit, note=NOT_APPROVED)
    rules = active_pay_rules(session, branch=branch, month=month)
    if rules is None:
        raise BadInput(missing_pay_rules_message(branch, month), column="policy")
    return PolicyChoice(text=rules.policy, version=rules.version,
                        filing_serial=rules.filing_serial, result_serial=rules.result_serial)
