"""SQLModel tables: roster, serial counters and records, archive index, access log."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, UniqueConstraint, text
from sqlalchemy import Text as SAText
from sqlmodel import Field, SQLModel

from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.vocabulary import SerialStatus

# --------------------------------------------------------------------------- roster


class UserBase(SQLModel):
    user_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=128)
    branch: str = Field(index=True, max_length=16)
    team: str = Field(default="", max_length=64)
    supervisor_id: str | None = Field(default=None, max_length=64)


class User(UserBase, table=True):
    """A person on the roster; the only source of who may sign or read what."""

    secret_hash: str = Field(max_length=256)
    updated_at: datetime = Field(default_factory=utcnow)
    left_on: date | None = Field(default=None)  # disabled from this day on: no right at all
    totp_seed: str | None = Field(default=None, max_length=255)  # encrypted (kernel.totp)


class TotpUse(SQLModel, table=True):
    """A one-time code's time step once it counted: the same code never counts twice."""

    __table_args__ = (UniqueConstraint("user_id", "step"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=64)
    step: int
    at: datetime = Field(default_factory=utcnow)


class LoginFailure(SQLModel, table=True):
    """One failed secret check, kept for the lockout window (per user and per address)."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(index=True, max_length=64)
    address: str = Field(default="", index=True, max_length=64)
    at: datetime = Field(default_factory=utcnow)


class WebSession(SQLModel, table=True):
    """A login on the archive page, held server-side: the cookie carries only a random token
    whose SHA-256 is ``id``; logging out (or leaving) ends it for good."""

    id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(index=True, max_length=64)
    address: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = Field(default=None)


class UserRole(SQLModel, table=True):
    """One role a user holds (scoped by the user's branch/team, or head office)."""

    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(foreign_key="user.user_id", index=True, max_length=64)
    role: str = Field(max_length=64)


class UserPublic(UserBase):
    roles: list[str] = []


# --------------------------------------------------------------------------- serials


class SerialCounter(SQLModel, table=True):
    """The last number handed out per (branch, type, year)."""

    branch: str = Field(primary_key=True, max_length=16)
    doc_type: str = Field(primary_key=True, max_length=8)
    year: int = Field(primary_key=True)
    last_number: int = 0


class SerialRecord(SQLModel, table=True):
    """Every allocated serial, so every number is accounted for (stored or void)."""

    __table_args__ = (
        # one live (non-void) serial per document subject and revision
        Index(
            "ux_serialrecord_subject",
            "doc_type",
            "subject_key",
            "revision",
            unique=True,
            sqlite_where=text("status != 'void'"),
            postgresql_where=text("status != 'void'"),
        ),
    )

    serial: str = Field(primary_key=True, max_length=40)
    branch: str = Field(max_length=16)
    doc_type: str = Field(max_length=8)
    year: int
    number: int
    subject_key: str = Field(max_length=255)
    revision: int = 1
    status: str = Field(default=SerialStatus.RESERVED, max_length=16, index=True)
    reason: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))
    allocated_at: datetime = Field(default_factory=utcnow)
    settled_at: datetime | None = None
    # who may continue an interrupted reservation at once (a flow run id); None: nobody
    owner: str | None = Field(default=None, max_length=64)


# --------------------------------------------------------------------------- archive index


class ArchiveEntryBase(SQLModel):
    serial: str = Field(primary_key=True, max_length=40)
    branch: str = Field(index=True, max_length=16)
    doc_type: str = Field(index=True, max_length=8)
    year: int
    number: int
    subject: str = Field(sa_column=Column(SAText, nullable=False))
    subject_key: str = Field(max_length=255)
    revision: int = 1
    cm_id: str | None = Field(default=None, index=True, max_length=64)
    team: str = Field(default="", max_length=64)
    month: str = Field(index=True, max_length=7)
    status: str = Field(default="current", max_length=16)
    sha256: str = Field(max_length=64)
    size: int
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class ArchiveEntry(ArchiveEntryBase, table=True):
    """The index row of one stored document; written only after its checksum is confirmed."""

    __table_args__ = (Index("ix_archiveentry_subject", "doc_type", "subject_key", "revision"),)

    object_key: str = Field(max_length=255)
    version_id: str = Field(default="", max_length=255)


class ArchiveEntryPublic(ArchiveEntryBase):
    object_key: str
    version_id: str


# --------------------------------------------------------------------------- access log


class AccessLogEntry(SQLModel, table=True):
    """Every authentication, read and write attempt on the archive, allowed or not."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    user_id: str = Field(max_length=64)
    action: str = Field(max_length=32)
    target: str = Field(default="", max_length=255)
    allowed: bool
    reason: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))


# --------------------------------------------------------------------------- approvals


class Filing(SQLModel, table=True):
    """A filing request (报批) from a branch, with its current revision and status."""

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(index=True, max_length=16)
    kind: str = Field(max_length=64)
    subject: str = Field(max_length=200)
    body: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))
    attachments: str = Field(default="[]", sa_column=Column(SAText, nullable=False,
                                                           default="[]"))  # JSON serials
    submitter_id: str = Field(max_length=64)
    revision: int = 1
    status: str = Field(default="waiting", max_length=16, index=True)
    current_serial: str = Field(default="", max_length=40)  # FIL of the current revision
    result_serial: str = Field(default="", max_length=40)  # FOP at the end
    flow_run_id: str | None = Field(default=None, max_length=64, unique=True)
    form_attempts: int = 0  # every processed form, counted or refused: keys the next pause
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ApprovalDecision(SQLModel, table=True):
    """One counted signature on one step of one revision of a request."""

    id: int | None = Field(default=None, primary_key=True)
    request_key: str = Field(index=True, max_length=64)
    revision: int
    step: str = Field(max_length=64)
    signer_id: str = Field(max_length=64)
    role: str = Field(max_length=64)
    decision: str = Field(max_length=16)
    opinion: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))
    department: str | None = Field(default=None, max_length=64)
    departments: str = Field(default="", max_length=512)  # ';'-joined, on the naming step
    details: str = Field(default="{}", sa_column=Column(SAText, nullable=False, default="{}"))
    decided_at: datetime = Field(default_factory=utcnow)


class WaitingStep(SQLModel, table=True):
    """The step a request waits on now, since when, and the last refusal shown to signers."""

    request_key: str = Field(primary_key=True, max_length=64)
    revision: int
    step: str = Field(max_length=64)
    since: datetime = Field(default_factory=utcnow)
    flow_run_id: str = Field(default="", max_length=64)
    last_refusal: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))


class Reminder(SQLModel, table=True):
    """催办: a step waited longer than the policy allows."""

    id: int | None = Field(default=None, primary_key=True)
    request_key: str = Field(index=True, max_length=64)
    revision: int
    step: str = Field(max_length=64)
    waiting_since: datetime
    reminded_at: datetime = Field(default_factory=utcnow)
    message: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))


class AuditEvent(SQLModel, table=True):
    """Append-only, hash-chained: hash = sha256(prev_hash + canonical content)."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor_id: str = Field(max_length=64)
    action: str = Field(max_length=32)
    request_key: str = Field(default="", index=True, max_length=64)
    content: str = Field(sa_column=Column(SAText, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The chain's tip; updating it serialises appenders and exposes a cut-off tail."""

    id: int = Field(default=1, primary_key=True)
    last_id: int = 0
    last_hash: str = Field(default="", max_length=64)
    count: int = 0
    legacy_last_id: int = 0  # rows up to this one predate the keyed chain (plain SHA-256)


# --------------------------------------------------------------------------- payroll


class PayrollRun(SQLModel, table=True):
    """One branch's monthly closing; a re-run of an open month is a new revision."""

    __table_args__ = (UniqueConstraint("branch", "month", "revision"),)

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(index=True, max_length=16)
    month: str = Field(index=True, max_length=7)
    revision: int = 1
    status: str = Field(default="draft", max_length=16)  # draft|signing|closed|rejected|...
    pay_serial: str = Field(default="", max_length=40)
    signed_serial: str = Field(default="", max_length=40)
    totals: str = Field(default="{}", sa_column=Column(SAText, nullable=False, default="{}"))
    flow_run_id: str = Field(default="", max_length=64)
    form_attempts: int = 0
    started_by: str = Field(default="system", max_length=64)  # a user, or the schedule
    # SPEC §8.3: the pay rules used (version and approving filing), or why none was
    policy_version: int | None = None
    policy_filing: str = Field(default="", max_length=40)  # the FIL that carried them
    policy_note: str = Field(default="", max_length=200)  # e.g. "policy not approved"
    figures: str = Field(default="{}", sa_column=Column(SAText, nullable=False, default="{}"))
    rpt_serial: str = Field(default="", max_length=40)  # the monthly business report
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PayrollLineRecord(SQLModel, table=True):
    """One CM's pay line of one closing revision, as SPEC §6.3 JSON."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="payrollrun.id", index=True)
    cm_id: str = Field(max_length=64)
    line: str = Field(sa_column=Column(SAText, nullable=False))


class PayrollCarry(SQLModel, table=True):
    """State carried out of a month per CM (the next month's opening state)."""

    __table_args__ = (UniqueConstraint("branch", "month", "cm_id"),)

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(max_length=16)
    month: str = Field(index=True, max_length=7)
    cm_id: str = Field(max_length=64)
    excess_carry: str = Field(default="0.00", max_length=32)
    risk_fund_balance: str = Field(default="0.00", max_length=32)
    level: str = Field(default="", max_length=16)
    score: str = Field(default="", max_length=16)
    run_id: int = Field(foreign_key="payrollrun.id")
    # SPEC §8.1: what the next month continues from
    title: str | None = Field(default=None, max_length=16)
    asset_level: str = Field(default="", max_length=16)
    ytd_absent_half_days: int = 0
    ytd_personal_leave_days: str = Field(default="0.00", max_length=32)
    withheld_fixed_pay: str = Field(default="0.00", max_length=32)
    # SPEC §8.3: hire and leave dates (a CM who left keeps a carry until the refund)
    hire_date: date | None = None
    leave_date: date | None = None


# --------------------------------------------------------------------------- staff lifecycle


class TitleRecord(SQLModel, table=True):
    """A CM's title (聘任职级) from ``effective_month`` on, and the document that approved it
    (an LVL serial; an opening title names its source).  Never edited: a change is a new row."""

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(index=True, max_length=16)
    cm_id: str = Field(index=True, max_length=64)
    title: str = Field(max_length=16)
    effective_month: str = Field(max_length=7)
    kind: str = Field(max_length=32)  # promotion|exceptional_promotion|conversion|demotion|...
    approved_by: str = Field(default="", max_length=256)  # ';'-joined signer ids
    document: str = Field(default="", max_length=40)  # the LVL serial
    request_key: str = Field(default="", max_length=64)
    recorded_at: datetime = Field(default_factory=utcnow)


class LevelChange(SQLModel, table=True):
    """A level-change request (职级变动): application, exceptional promotion, conversion or a
    demotion the closing proposed; approved through its chain, then archived as LVL."""

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(index=True, max_length=16)
    cm_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=32)
    from_title: str = Field(default="", max_length=16)
    to_title: str = Field(max_length=16)
    month: str = Field(max_length=7)  # the closing month whose flags it rests on
    reason: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))
    proposed_by: str = Field(max_length=64)
    revision: int = 1
    status: str = Field(default="waiting", max_length=16, index=True)
    effective_month: str = Field(default="", max_length=7)
    lvl_serial: str = Field(default="", max_length=40)
    flow_run_id: str | None = Field(default=None, max_length=64)
    form_attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class StaffCase(SQLModel, table=True):
    """A case on a CM: a malicious-account investigation (seed 001 第二十七条4).  Open: the
    closing withholds the CM's fixed pay; concluded: confirmed accounts are fined."""

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(index=True, max_length=16)
    cm_id: str = Field(index=True, max_length=64)
    kind: str = Field(default="investigation", max_length=32)
    status: str = Field(default="open", max_length=16, index=True)
    reason: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))
    opened_by: str = Field(max_length=64)
    opened_at: datetime = Field(default_factory=utcnow)
    outcome: str = Field(default="", max_length=16)  # confirmed|cleared
    confirmed_accounts: int = 0
    concluded_by: str = Field(default="", max_length=256)  # ';'-joined: concluder, sign-off
    concluded_at: datetime | None = None
    fine_month: str = Field(default="", max_length=7)  # the closing that fines it


class StaffNotice(SQLModel, table=True):
    """A notice about a CM for someone to act on: 待岗培训 after a score below 60 (with the
    情况说明和保证书 to collect by ``due``), or an HR notice (termination right, deemed
    resigned).  Nothing is decided by the notice itself."""

    __table_args__ = (UniqueConstraint("branch", "cm_id", "kind", "month"),)

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(index=True, max_length=16)
    cm_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=32)  # training|termination_right|deemed_resigned
    month: str = Field(max_length=7)  # the closing month that raised it
    due: date | None = None
    status: str = Field(default="open", max_length=16)  # open|done
    details: str = Field(default="{}", sa_column=Column(SAText, nullable=False, default="{}"))
    created_at: datetime = Field(default_factory=utcnow)
    done_by: str = Field(default="", max_length=64)
    done_at: datetime | None = None


class Evaluation(SQLModel, table=True):
    """A branch's quarterly evaluation (季度考评, SPEC §8.2): the forms expected (``plan``, JSON,
    fixed when it opens), the deadline, and the EVL archived at the end."""

    __table_args__ = (UniqueConstraint("branch", "quarter"),)

    id: int | None = Field(default=None, primary_key=True)
    branch: str = Field(index=True, max_length=16)
    quarter: str = Field(max_length=8)  # YYYYQn
    status: str = Field(default="collecting", max_length=16)  # collecting|computing|archived
    deadline: datetime
    plan: str = Field(default="{}", sa_column=Column(SAText, nullable=False, default="{}"))
    closed_reason: str = Field(default="", max_length=16)  # all_in|deadline
    evl_serial: str = Field(default="", max_length=40)
    flow_run_id: str | None = Field(default=None, max_length=64)
    form_attempts: int = 0  # every processed form, counted or refused: keys the next pause
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None


class EvaluationForm(SQLModel, table=True):
    """One form an evaluator submitted (附件一, 附件二, the team form or the general manager's
    comment on a team): item scores (JSON) and their total."""

    __table_args__ = (UniqueConstraint("evaluation_id", "evaluatee_id", "evaluator_id",
                                       "evaluator_group"),)

    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="evaluation.id", index=True)
    evaluatee_id: str = Field(max_length=72)  # a user id, or team:<team> for a team form
    evaluator_id: str = Field(max_length=64)
    evaluator_group: str = Field(max_length=16)  # peer|regional|marketing|sales|gm
    kind: str = Field(max_length=16)  # cm|manager|team|team_comment
    scores: str = Field(default="{}", sa_column=Column(SAText, nullable=False, default="{}"))
    total: str = Field(default="", max_length=16)
    comment: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))
    form_key: str = Field(default="", max_length=128)
    submitted_at: datetime = Field(default_factory=utcnow)


# --------------------------------------------------------------------------- attribution


class ClientIdentity(SQLModel, table=True):
    """A client known only by a keyed hash of the ID number and its last four characters."""

    id_hash: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=128)
    id_last4: str = Field(max_length=4)
    client_id: str | None = Field(default=None, index=True, max_length=64)  # CRM account
    malicious: bool = False  # 恶意开户: never counts
    malicious_reason: str = Field(default="", sa_column=Column(SAText, nullable=False,
                                                               default=""))
    created_at: datetime = Field(default_factory=utcnow)


class Attribution(SQLModel, table=True):
    """One claim that a client belongs to a CM; a change of CM is a new row, never an edit."""

    id: int | None = Field(default=None, primary_key=True)
    id_hash: str = Field(foreign_key="clientidentity.id_hash", index=True, max_length=64)
    cm_id: str = Field(index=True, max_length=64)
    branch: str = Field(max_length=16)
    team: str = Field(default="", max_length=64)
    asset_size: str = Field(max_length=32)
    status: str = Field(default="pending", index=True, max_length=16)
    # pending | conflict | effective | ended | rejected | returned
    conflict_with: int | None = None  # the attribution this claim collides with
    resolution: str = Field(default="", max_length=16)  # keep | transfer
    client_id: str | None = Field(default=None, index=True, max_length=64)
    registered_by: str = Field(max_length=64)
    confirmation_serial: str = Field(default="", max_length=40)
    flow_run_id: str | None = Field(default=None, max_length=64)
    form_attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    effective_at: datetime | None = None
    ended_at: datetime | None = None


# --------------------------------------------------------------------------- flow runs


class RunLease(SQLModel, table=True):
    """The process running a flow run is alive: renewed while it runs, removed when it stops.

    A lease not renewed for ``run_lease_seconds`` (or whose process on this host is gone)
    tells the serve process's sweep that the run was stranded by a dead process.
    """

    flow_run_id: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=255)  # host:pid of the run's process
    acquired_at: datetime = Field(default_factory=utcnow)
    renewed_at: datetime = Field(default_factory=utcnow)


class RunRecovery(SQLModel, table=True):
    """A stranded flow run handed back to be run again; one row per stranded state."""

    id: int | None = Field(default=None, primary_key=True)
    flow_run_id: str = Field(index=True, max_length=64)
    from_state_id: str = Field(unique=True, max_length=64)
    from_state: str = Field(max_length=64)
    reason: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))
    at: datetime = Field(default_factory=utcnow)


# --------------------------------------------------------------------------- legal holds


class HoldCase(SQLModel, table=True):
    """Why documents are under a legal hold (SPEC §5): an open client dispute, investigation
    or risk-fund deduction on a CM (every document of the CM), or a manual hold on one
    document.  Open while ``closed_at`` is None."""

    id: int | None = Field(default=None, primary_key=True)
    case_key: str = Field(unique=True, max_length=64)  # dispute:SZ01:7, manual:<serial>:1
    kind: str = Field(max_length=16)  # dispute|investigation|riskfund|manual
    branch: str = Field(max_length=16)
    cm_id: str | None = Field(default=None, index=True, max_length=64)  # None: manual
    reason: str = Field(default="", sa_column=Column(SAText, nullable=False, default=""))
    opened_by: str = Field(max_length=64)
    opened_at: datetime = Field(default_factory=utcnow)
    closed_by: str = Field(default="", max_length=64)
    closed_at: datetime | None = None
    close_reason: str = Field(default="", sa_column=Column(SAText, nullable=False,
                                                           default=""))


class LegalHold(SQLModel, table=True):
    """One case's hold on one archived document; active while ``released_at`` is None.  The
    object carries the S3 legal hold while any of its rows is active."""

    __table_args__ = (
        # a case holds a document at most once at a time
        Index("ux_legalhold_active", "serial", "case_key", unique=True,
              sqlite_where=text("released_at IS NULL"),
              postgresql_where=text("released_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(index=True, max_length=40)
    case_key: str = Field(index=True, max_length=64)
    placed_by: str = Field(max_length=64)
    placed_at: datetime = Field(default_factory=utcnow)
    released_by: str = Field(default="", max_length=64)
    released_at: datetime | None = None
