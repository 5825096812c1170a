"""The forms a manager fills in the Prefect UI, and the markdown shown above them.

Prefect records no identity on resume, so every form carries the signer's user id and secret;
the engine checks them against the roster and deletes the stored input right after reading it.
Every text a user wrote (subjects, opinions, refusals, names) goes through ``escape_markdown``
before it reaches a description: no link, image or HTML of theirs ever renders above a form
someone fills with their secret.  Document links point at the archive page, which checks
SPEC §5 access and logs the read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from prefect.input import RunInput
from pydantic import Field, SecretStr

from brokerflow.approvals.chain import Decision, Waiting
from brokerflow.kernel.vocabulary import DECISION_LABELS


class SignForm(RunInput):
    """签批: approve, reject (ends the chain) or return to the submitter."""

    signer: str = Field(default="", description="your user id (工号)")
    secret: SecretStr = Field(default=SecretStr(""),
                              description="your secret or one-time code")
    decision: Literal["approve", "reject", "return"] = "approve"
    opinion: str = Field(default="", description="意见 (required to reject or return)")


class NamingForm(SignForm):
    """The channel dept's form: also names the departments that must countersign."""

    countersign_departments: list[str] = Field(
        default_factory=list, description="会签部门, e.g. compliance, risk, finance, hr"
    )


class ResubmitForm(RunInput):
    """The submitter's answer to a return (退回): a revised request, or withdrawal."""

    signer: str = Field(default="", description="your user id (the submitter)")
    secret: SecretStr = Field(default=SecretStr(""),
                              description="your secret or one-time code")
    action: Literal["resubmit", "withdraw"] = "resubmit"
    subject: str = Field(default="", description="revised subject (empty: keep)")
    body: str = Field(default="", description="revised request text (empty: keep)")


class SubmitForm(RunInput):
    """Confirms a submission started from the Prefect UI as the named submitter."""

    signer: str = Field(default="", description="your user id (the submitter)")
    secret: SecretStr = Field(default=SecretStr(""),
                              description="your secret or one-time code")


def describe_waiting(
    *,
    title: str,
    subject: str,
    serial: str,
    pdf_url: str,
    waiting: Waiting,
    decisions: Sequence[Decision],
    names: dict[str, str],
    last_refusal: str = "",
    notes: Sequence[str] = (),
) -> str:
    """Markdown for the form: what is being signed, what the signer should check first
    (``notes``, e.g. a closing's discrepancies), what happened so far, who may sign."""
    lines = [f"## {title}", "", f"**事由 Subject:** {_md(subject)}  ",
             f"**流水号 Serial:** {_md(serial)}  "]
    if pdf_url:
        lines.append(f"**文件 Document:** [{_md(serial)}.pdf]({pdf_url}) (archive page)")
    if notes:
        lines += ["", "### 签批前请核对 Check before signing"]
        lines += [f"- {_md(note)}" for note in notes]
    lines += ["", f"### 当前步骤 Step: {waiting.step.label} (`{waiting.step.name}`)"]
    if waiting.step.kind == "countersign":
        lines.append(f"Departments still to countersign: **{', '.join(waiting.may_sign)}**")
        if waiting.done_departments:
            lines.append(f"Already countersigned: {', '.join(waiting.done_departments)}")
    else:
        lines.append(f"May sign: a user holding role **{' / '.join(waiting.may_sign)}** "
                     "who has not signed another step and did not submit the request.")
    if waiting.step.names_countersigners:
        lines.append("Name the departments that must countersign (会签部门) in the form.")
    if last_refusal:
        lines += ["", f"> **The last form was not accepted:** {_md(last_refusal)}"]
    lines += ["", "### 已有签批 Decisions so far"]
    if decisions:
        lines += ["| step | signer | decision | time | opinion |", "|---|---|---|---|---|"]
        for d in decisions:
            who = f"{names.get(d.signer_id, d.signer_id)} ({d.signer_id})"
            step = d.step + (f" / {d.department}" if d.department else "")
            lines.append(f"| {step} | {_md(who)} | {DECISION_LABELS.get(d.decision, d.decision)}"
                         f" | {d.at} | {_md(d.opinion)} |")
    else:
        lines.append("(none yet)")
    return "\n".join(lines)


def escape_markdown(text: str) -> str:
    """User text made inert for a form description: every markdown control character is
    backslash-escaped, ``<``/``>``/``&`` become entities, line breaks become spaces (so no
    link, image, HTML, heading or table row of the user's ever renders)."""
    out = (text.replace("\\", "\\\\").replace("&", "&amp;").replace("<", "&lt;")
           .replace(">", "&gt;"))
    for ch in "*_`[]()#|!~.:":  # emphasis, code, links/images, headings, tables, autolinks
        out = out.replace(ch, "\\" + ch)
    return " ".join(out.split())


_md = escape_markdown


def describe_return(*, filing_id: int, revision: int, step_label: str, opinion: str,
                    submitter_id: str, last_refusal: str = "") -> str:
    """Markdown for the resubmit form after a return (退回): the reviewer's opinion escaped."""
    lines = [f"## 报批 Filing #{filing_id} was returned (退回) — revision {revision}",
             f"**Returned at step:** {_md(step_label)}  ",
             f"**Opinion:** {_md(opinion)}", "",
             f"The submitter (**{_md(submitter_id)}**) resubmits a revised request "
             "(revision + 1, a new FIL document) or withdraws it."]
    if last_refusal:
        lines += ["", f"> **The last form was not accepted:** {_md(last_refusal)}"]
    return "\n".join(lines)


def describe_submission(*, branch: str, kind: str, subject: str, submitter: str) -> str:
    """Markdown for the form confirming a submission started from the Prefect UI."""
    return (f"## 报批 submission\n**Branch:** {_md(branch)}  \n**Kind:** {_md(kind)}  \n"
            f"**Subject:** {_md(subject)}\n\nThe submitter **{_md(submitter)}** confirms "
            "with their user id and secret.")


class PreregisterForm(RunInput):
    """预约登记 from the Prefect UI (back-office support).  The ID number is deleted from
    Prefect's database right after it is read; only a keyed hash and the last 4 are kept."""

    signer: str = Field(default="", description="your user id (back-office support)")
    secret: SecretStr = Field(default=SecretStr(""),
                              description="your secret or one-time code")
    cm: str = Field(default="", description="the CM (营销经理) the client comes with")
    client_name: str = Field(default="", description="客户姓名")
    id_number: SecretStr = Field(default=SecretStr(""),
                                 description="18-digit resident ID number")
    asset_size: str = Field(default="0", description="expected assets (元)")


class ConflictReviewForm(SignForm):
    """Trading dept manager's review of a conflicting claim: keep the existing attribution
    (decision reject) or transfer the client (decision approve); the opinion is the reason."""

    resolution: Literal["", "keep", "transfer"] = ""


class EntryForm(SignForm):
    """The trading dept manager enters the attribution with the client's account number."""

    client_id: str = Field(default="", description="客户号 / fund account in the CRM")


class EvaluationInput(RunInput):
    """季度考评表: one evaluator's form on one person (附件一/附件二) or team (团队考核评价表)."""

    evaluator: str = Field(default="", description="your user id (工号)")
    secret: SecretStr = Field(default=SecretStr(""),
                              description="your secret or one-time code")
    evaluatee: str = Field(default="", description="考核对象: a user id, or team:<team>")
    group: Literal["", "peer", "regional", "marketing", "sales", "gm"] = Field(
        default="", description="your group for this evaluatee (see the table above)")
    scores: dict[str, int | float | str] = Field(
        default_factory=dict, description='item → score, e.g. {"本岗位职责履职情况": 18, ...}')
    comment: str = Field(default="", description="备注 (the general manager: 总经理评语)")


def describe_evaluation(*, title: str, deadline: str, received: int, expected: int,
                        outstanding: Sequence[tuple[str, str, str, str]],
                        forms: Sequence[tuple[str, str]], last_refusal: str = "",
                        limit: int = 60) -> str:
    """Markdown for the evaluation form: the deadline, the forms still open (evaluators,
    evaluatee as it is written in the form, group, form), the items of each form."""
    lines = [f"## {_md(title)}", "",
             f"**截止 Deadline:** {_md(deadline)}  ",
             f"**已收到 Received:** {received} / {expected} forms", "",
             "Fill in `evaluator` (your 工号), `secret` (your one-time code), `evaluatee` and "
             "`group` as the table writes them, `scores`: every item of the form with a score "
             "from 0 to its maximum (at most two decimals), `comment` (备注). The general "
             "manager's comment on a team (总经理评语) is a form with only `comment`."]
    if last_refusal:
        lines += ["", f"> **The last form was not accepted:** {_md(last_refusal)}"]
    lines += ["", "### 待评 Forms still open",
              "| evaluator | evaluatee | group | form |", "|---|---|---|---|"]
    for evaluators, evaluatee, group, form in outstanding[:limit]:
        lines.append(f"| {_md(evaluators)} | {_md(evaluatee)} | {_md(group)} | {_md(form)} |")
    if len(outstanding) > limit:
        lines.append(f"| … and {len(outstanding) - limit} more | | | |")
    lines += ["", "### 评分项目 Items (maximum)"]
    lines += [f"- **{_md(form)}:** {_md(items)}" for form, items in forms]
    return "\n".join(lines)
