"""Client attribution verification (客户归属确认, seed 001 第三十一条) as a Prefect flow.

Pre-registration (back office) → the confirmation form 客户确认登记表 (CNF) rendered and
archived, signed by the client in person (collected by the counter clerk; the system never
signs for a client) → first review (counter clerk or back office) → trading dept manager
review (resolves a conflict: keep or transfer) → finance manager and branch manager (both, any
order) → trading dept manager enters the attribution with the account number: effective now.

At the end the chain's record is archived as a second CNF (its own subject key, ``:signed``):
客户确认登记表（签批生效） with the account number, the effective time and every review
decision, or （未通过）/（退回） with the decisions taken.  The registration CNF stays current
(it is the form the client signed); the signed one names its serial, and ``attribution show``
names the signed one (``signed_serial``, looked up in the archive index).
"""

# No `from __future__ import annotations` here: the served flow is pickled by value into its run
# process, where string annotations (e.g. WaitMode) could not be resolved.


from prefect import flow
from sqlmodel import select

from brokerflow.approvals.attributions import (
    get_attribution,
    make_effective,
    preregister,
    request_key,
    resolve_conflict,
    signed_key,
)
from brokerflow.approvals.chain import ATTRIBUTION_CHAIN, Decision, Waiting, progress
from brokerflow.approvals.decisions import clear_waiting, load_decisions
from brokerflow.approvals.forms import ConflictReviewForm, EntryForm, PreregisterForm, SignForm
from brokerflow.approvals.run_labels import attribution_run_name
from brokerflow.approvals.signing import (
    SigningRequest,
    bind_flow_run,
    claim_on,
    take_signature,
    update_row,
    user_names,
)
from brokerflow.approvals.waiting import ANSWER_HOOKS, WaitMode, awaited_form, current_flow_run_id
from brokerflow.archive.service import Archive, DocumentSpec, open_archive
from brokerflow.flows.archive_document import archive_step
from brokerflow.flows.leases import held_lease
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.calendar import local_minute
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BrokerflowError
from brokerflow.kernel.idnumbers import mask_last4
from brokerflow.kernel.models import Attribution, AuditEvent, ClientIdentity, User
from brokerflow.kernel.roster import get_user_view, identify
from brokerflow.kernel.settings import Settings, load_settings
from brokerflow.kernel.vocabulary import ROLE_LABELS, AttributionStatus, DecisionKind

FINAL = ("effective", "ended", "rejected", "returned")
#: The signed record's title by how the chain ended ("ended": effective, then transferred).
SIGNED_TITLES = {"effective": "客户确认登记表（签批生效）", "ended": "客户确认登记表（签批生效）",
                 "rejected": "客户确认登记表（未通过）", "returned": "客户确认登记表（退回）"}
RESOLUTION_LABELS = {"keep": "维持原归属", "transfer": "变更归属"}


def _confirmation_form(archive: Archive, attribution: Attribution) -> str:
    """Render and archive the CNF (masked ID only), filed under the CM."""
    assert attribution.id is not None
    with new_session(archive.engine) as session:
        identity = session.get(ClientIdentity, attribution.id_hash)
        cm = session.get(User, attribution.cm_id)
        registrar = get_user_view(session, attribution.registered_by)
    assert identity is not None and cm is not None and registrar is not None
    subject = f"客户归属确认：{identity.name}"
    data: dict[str, object] = {
        "branch": attribution.branch, "subject": subject,
        "body": {"client_name": identity.name, "masked_id": mask_last4(identity.id_last4),
                 "asset_size": attribution.asset_size, "cm_name": cm.name,
                 "cm_id": cm.user_id, "team": attribution.team,
                 "client_signature": "客户本人现场签字，由柜台人员采集（系统不代客户签字）"},
    }
    spec = DocumentSpec(branch=attribution.branch, doc_type="CNF", subject=subject,
                        subject_key=request_key(attribution.id), cm_id=attribution.cm_id,
                        source=f"attribution {attribution.id}")
    return archive_step(archive, spec, data, actor=registrar)


def _signed_confirmation(archive: Archive, attribution: Attribution,
                         decisions: list[Decision]) -> str:
    """Archive the chain's record as a CNF filed under the CM (masked ID only): the account
    number and effective time, every review decision in the signature block; its serial, or
    "" when nobody signed (nothing to record)."""
    assert attribution.id is not None
    if not decisions:
        return ""
    names = user_names(archive.engine, [d.signer_id for d in decisions])
    with new_session(archive.engine) as session:
        identity = session.get(ClientIdentity, attribution.id_hash)
        cm = session.get(User, attribution.cm_id)
        archiver = get_user_view(session, decisions[-1].signer_id)
    assert identity is not None and cm is not None and archiver is not None
    title = SIGNED_TITLES[attribution.status]
    effective = (local_minute(attribution.effective_at, archive.zone)
                 if attribution.effective_at is not None else "")
    subject = f"客户归属确认：{identity.name} → {cm.name}（{cm.user_id}）"
    body: dict[str, object] = {
        "client_name": identity.name, "masked_id": mask_last4(identity.id_last4),
        "asset_size": attribution.asset_size, "cm_name": cm.name, "cm_id": cm.user_id,
        "team": attribution.team, "outcome": title.removeprefix("客户确认登记表").strip("（）"),
        "client_id": attribution.client_id or "", "effective_at": effective,
        "registration_serial": attribution.confirmation_serial,
        "conflict_with": f"#{attribution.conflict_with}" if attribution.conflict_with else "",
        "resolution": RESOLUTION_LABELS.get(attribution.resolution, attribution.resolution),
        "client_signature": f"见登记表 {attribution.confirmation_serial}（客户本人现场签字，"
                            "由柜台人员采集；系统不代客户签字）",
    }
    data: dict[str, object] = {
        "branch": attribution.branch, "subject": subject, "title": title, "body": body,
        "signatures": [
            {"role": f"{ATTRIBUTION_CHAIN.step(d.step).label}"
                     f"（{ROLE_LABELS.get(d.role, d.role)}）",
             "name": names.get(d.signer_id, d.signer_id), "decision": d.decision,
             "time": d.at, "opinion": d.opinion}
            for d in decisions
        ],
    }
    spec = DocumentSpec(branch=attribution.branch, doc_type="CNF", subject=subject,
                        subject_key=signed_key(attribution.id), cm_id=attribution.cm_id,
                        source=f"attribution {attribution.id}")
    return archive_step(archive, spec, data, actor=archiver)


def _ended(archive: Archive, attribution: Attribution, decisions: list[Decision]) -> str:
    """A final attribution: make sure its signed record is archived (a re-run finds the one
    archived before); its status."""
    assert attribution.id is not None
    serial = _signed_confirmation(archive, attribution, decisions)
    if serial:
        with new_session(archive.engine) as session:
            archived = session.exec(select(AuditEvent).where(
                AuditEvent.request_key == request_key(attribution.id),
                AuditEvent.action == "attribution-signed-archived")).first()
            if archived is None:
                append_audit(session, actor_id="system", action="attribution-signed-archived",
                             request_key=request_key(attribution.id),
                             details={"status": attribution.status, "cnf": serial,
                                      "registration": attribution.confirmation_serial})
                session.commit()
    return attribution.status


def _step_request(archive: Archive, attribution: Attribution, waiting: Waiting,
                  decisions: list[Decision]) -> SigningRequest:
    assert attribution.id is not None
    form_type: type[SignForm] | None = None
    extra_check = None
    if (waiting.step.name == "trading_review"
            and attribution.status == AttributionStatus.CONFLICT):
        form_type = ConflictReviewForm

        def extra_check(answer: ConflictReviewForm) -> str | None:  # type: ignore[misc]
            wanted = {"keep": DecisionKind.REJECT,
                      "transfer": DecisionKind.APPROVE}.get(answer.resolution)
            if answer.decision == DecisionKind.RETURN:
                return None
            if wanted is None:
                return (f"this client has a live attribution (#{attribution.conflict_with}): "
                        "resolve it — resolution keep (decision reject) or transfer (decision "
                        "approve), with the reason as opinion")
            if answer.decision != wanted or not answer.opinion.strip():
                return f"resolution {answer.resolution} needs decision {wanted} and a reason"
            return None
    elif waiting.step.name == "trading_entry":
        form_type = EntryForm

        def extra_check(answer: EntryForm) -> str | None:  # type: ignore[misc]
            if answer.decision == DecisionKind.APPROVE and not answer.client_id.strip():
                return "enter the client's account number (client_id) to make it effective"
            return None

    return SigningRequest(
        chain=ATTRIBUTION_CHAIN, request_key=request_key(attribution.id), revision=1,
        attempt=attribution.form_attempts,
        title=f"客户归属确认 #{attribution.id} → {attribution.cm_id}"
              + (" (CONFLICT)" if attribution.status == AttributionStatus.CONFLICT else ""),
        subject=f"client …{_last4(archive, attribution)}, assets {attribution.asset_size}",
        serial=attribution.confirmation_serial,
        pdf_url=archive.document_link(attribution.confirmation_serial),
        submitter_id=attribution.registered_by, branch=attribution.branch,
        run_name=attribution_run_name(attribution.client_id or f"#{attribution.id}",
                                      attribution.cm_id),
        form_type=form_type, extra_check=extra_check,  # type: ignore[arg-type]
    )


def _last4(archive: Archive, attribution: Attribution) -> str:
    with new_session(archive.engine) as session:
        identity = session.get(ClientIdentity, attribution.id_hash)
    return identity.id_last4 if identity else "????"


def _apply_decisions(archive: Archive, attribution_id: int, decisions: list[Decision]) -> None:
    """Effects that follow from counted decisions (idempotent: safe after a restart)."""
    with new_session(archive.engine) as session:
        attribution = get_attribution(session, attribution_id=attribution_id)
        for d in decisions:
            details = dict(d.details)
            if (d.step == "trading_review" and attribution.status == AttributionStatus.CONFLICT
                    and details.get("resolution") in ("keep", "transfer")):
                resolve_conflict(session, attribution=attribution,
                                 resolution=details["resolution"], actor_id=d.signer_id,
                                 reason=d.opinion)
        session.commit()


def _finish(archive: Archive, attribution_id: int, outcome: str,
            decisions: list[Decision]) -> str:
    """Record how the chain ended (effective: from this moment); the status."""
    with new_session(archive.engine) as session:
        attribution = get_attribution(session, attribution_id=attribution_id)
        if attribution.status in FINAL:
            return attribution.status
        if outcome == "approved":
            entry = next(d for d in decisions if d.step == "trading_entry")
            make_effective(session, attribution=attribution,
                           client_id=dict(entry.details)["client_id"].strip(),
                           actor_id=entry.signer_id)
        else:
            attribution.status = outcome
            session.add(attribution)
        clear_waiting(session, request_key=request_key(attribution_id))
        session.commit()
        return attribution.status


def _preregister_from_ui(archive: Archive, settings: Settings, *, run_id: str,
                         mode: WaitMode, poll_interval: float) -> int:
    with new_session(archive.engine) as session:
        existing = session.exec(select(Attribution).where(
            Attribution.flow_run_id == run_id)).first()
    if existing is not None and existing.id is not None:
        return existing.id
    registration = f"preregistration:{run_id}"
    while True:
        attempt = _refusals(archive, registration)  # a re-run asks for the same form again
        with awaited_form(PreregisterForm, description=(
            "## 预约登记 Client pre-registration\n\nBack-office support enters the client and "
            "the CM. The ID number is validated (GB 11643), stored only as a keyed hash and "
            "its last 4 digits, and deleted from Prefect right after it is read."),
                key=f"preregister-{attempt}", mode=mode, poll_interval=poll_interval) as answer:
            registrar = identify(archive.engine, user_id=answer.signer.strip(),
                                 secret=answer.secret.get_secret_value())
            reason = "unknown user or wrong secret"
            if registrar is not None:
                try:
                    with new_session(archive.engine) as session:
                        attribution = preregister(
                            session, registrar=registrar, cm_id=answer.cm.strip(),
                            client_name=answer.client_name,
                            id_number=answer.id_number.get_secret_value(),
                            asset_size=answer.asset_size, hash_key=settings.id_hash_key)
                        attribution.flow_run_id = run_id
                        session.add(attribution)
                        session.commit()
                        assert attribution.id is not None
                        return attribution.id
                except BrokerflowError as exc:  # a bad form (the error names no ID number)
                    reason = str(exc)
            with new_session(archive.engine) as session:
                append_audit(session, actor_id=answer.signer or "(blank)", action="refused",
                             request_key=registration,
                             details={"reason": reason, "form": f"preregister-{attempt}"})
                session.commit()


def _refusals(archive: Archive, request: str) -> int:
    """How many forms of ``request`` were refused so far (the next form's number)."""
    from sqlmodel import func

    with new_session(archive.engine) as session:
        return int(session.exec(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.request_key == request, AuditEvent.action == "refused")).one())


@flow(name="client-attribution", persist_result=True, on_completion=ANSWER_HOOKS,
      on_failure=ANSWER_HOOKS, on_cancellation=ANSWER_HOOKS)
def client_attribution(
    attribution_id: int | None = None,
    wait: WaitMode = "suspend",
    poll_interval: float = 10.0,
) -> str:
    """Verify one pre-registered attribution; returns its final status."""
    settings = load_settings()
    archive = open_archive(settings, prepare_bucket=False)
    run_id = current_flow_run_id()
    with held_lease(archive.engine, run_id, lease_seconds=settings.run_lease_seconds):
        if attribution_id is None:
            attribution_id = _preregister_from_ui(archive, settings, run_id=run_id, mode=wait,
                                                  poll_interval=poll_interval)
        bind_flow_run(archive.engine, Attribution, attribution_id, run_id)
        return _verify(archive, attribution_id, run_id=run_id, mode=wait,
                       poll_interval=poll_interval)


def _verify(archive: Archive, attribution_id: int, *, run_id: str, mode: WaitMode,
            poll_interval: float) -> str:
    while True:
        with new_session(archive.engine) as session:
            attribution = get_attribution(session, attribution_id=attribution_id)
            decisions = load_decisions(session, request_key=request_key(attribution_id),
                                       revision=1, zone=archive.zone)
        if attribution.status in FINAL:
            return _ended(archive, attribution, decisions)
        if not attribution.confirmation_serial:
            update_row(archive.engine, Attribution, attribution_id,
                       confirmation_serial=_confirmation_form(archive, attribution))
            continue
        _apply_decisions(archive, attribution_id, decisions)
        with new_session(archive.engine) as session:
            attribution = get_attribution(session, attribution_id=attribution_id)
        if attribution.status in FINAL:
            return _ended(archive, attribution, decisions)
        state = progress(ATTRIBUTION_CHAIN, decisions)
        if not isinstance(state, Waiting):
            _finish(archive, attribution_id, state.outcome, decisions)
            continue  # archives the signed record from the row as committed

        take_signature(archive.engine, _step_request(archive, attribution, state, decisions),
                       state, decisions, claim_attempt=claim_on(Attribution, attribution_id),
                       run_id=run_id, mode=mode, poll_interval=poll_interval)
