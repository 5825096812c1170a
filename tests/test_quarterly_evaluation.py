"""The quarterly evaluation flow (季度考评, SPEC §8.2) on the real Prefect test server, S3
endpoint and database: who evaluates whom, forms proven and checked (item maxima, self
evaluation, not expected, twice), the deadline, EVL archived, conversions and training notices.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prefect.client.orchestration import get_client
from sqlmodel import select

from brokerflow.archive.service import Archive
from brokerflow.flows.quarterly_evaluation import quarterly_evaluation
from brokerflow.kernel.calendar import local_minute, previous_quarter, quarter_months, utcnow
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import (
    AuditEvent,
    Evaluation,
    EvaluationForm,
    LevelChange,
    StaffNotice,
    TitleRecord,
    WaitingStep,
)
from brokerflow.payroll.evaluation import (
    CM_FORM,
    MANAGER_FORM,
    TEAM_FORM,
    EvaluationRow,
    compute_evaluation,
)
from brokerflow.payroll.evaluation_output import result_json
from brokerflow.payroll.evaluation_plan import Accepted, build_plan, check_submission
from brokerflow.payroll.evaluation_records import (
    open_evaluation,
    overdue_evaluation_runs,
    request_key,
)
from tests.support.chain_driver import ChainDriver
from tests.support.pdf import pdf_text

Q = "2026Q3"
KEY = request_key("SZ01", Q)


def scored(form: dict[str, int], total: float) -> dict[str, float]:
    """Item scores adding up to ``total``: each item filled up to its maximum in turn."""
    left, scores = Decimal(str(total)), {}
    for item, most in form.items():
        score = min(left, Decimal(most))
        scores[item], left = float(score), left - score
    assert left == 0
    return scores


def _view(user_id: str, role: str, supervisor: str | None = None, team: str = "") -> UserView:
    return UserView(user_id, user_id.upper(), "SZ01", team, supervisor, frozenset({role}))


# --------------------------------------------------------------------------- pure rules


def test_the_plan_follows_roles_teams_and_reporting_lines() -> None:
    users = [_view("bm1", "branch_manager"), _view("mk1", "marketing"),
             _view("pd1", "project_director"), _view("rm1", "regional_manager", "pd1", "R1"),
             _view("ra1", "regional_assistant", "rm1", "R1"),
             _view("sm1", "stationed_manager", "rm1", "T1"), _view("cm1", "cm", "sm1", "T1"),
             _view("cm2", "cm", "sm1", "T1"), _view("cm10", "cm", "rm1", "T2"),
             _view("rm2", "regional_manager", "pd1", "R2"), _view("cm3", "cm", "rm2", "T3")]
    plan = build_plan(users)
    by: dict[tuple[str, str], list[str]] = {}
    for s in plan.slots:
        by.setdefault((s.evaluatee, s.group), []).extend(s.evaluators)
    assert {p: plan.people[p].role for p in plan.people} == {
        "cm1": "cm", "cm2": "cm", "cm3": "cm", "cm10": "cm", "ra1": "regional_assistant",
        "rm1": "regional", "rm2": "regional"}
    assert by[("cm1", "peer")] == ["cm2", "cm10"]  # natural order; nobody evaluates themself
    assert by[("cm1", "regional")] == ["rm1"] and by[("cm1", "marketing")] == ["mk1"]
    assert ("cm3", "peer") not in by and by[("cm3", "regional")] == ["rm2"]  # alone in R2
    assert by[("rm1", "sales")] == ["cm1", "cm2", "cm10"] and by[("rm1", "gm")] == ["bm1"]
    assert by[("rm2", "sales")] == ["cm3"] and ("rm1", "regional") not in by
    assert by[("ra1", "sales")] == ["cm1", "cm2", "cm10"] and by[("ra1", "regional")] == ["rm1"]
    assert by[("ra1", "marketing")] == ["mk1"] and by[("ra1", "gm")] == ["bm1"]
    assert [(s.evaluatee, s.kind) for s in plan.slots if s.evaluatee.startswith("team:")] == [
        ("team:T1", "team"), ("team:T1", "team_comment"), ("team:T2", "team"),
        ("team:T2", "team_comment"), ("team:T3", "team"), ("team:T3", "team_comment")]
    assert all(s.evaluatee not in s.evaluators for s in plan.slots)
    assert {s.kind for s in plan.slots if s.evaluatee == "ra1"} == {"manager"}
    no_marketing = build_plan([u for u in users if u.user_id != "mk1"])
    assert all(s.group != "marketing" and not s.evaluatee.startswith("team:")
               for s in no_marketing.slots)  # the GM comments only on a team form


def test_a_submission_is_checked_against_the_plan_and_the_form() -> None:
    plan = build_plan([_view("bm1", "branch_manager"), _view("mk1", "marketing"),
                       _view("rm1", "regional_manager"), _view("cm1", "cm", "rm1", "T1"),
                       _view("cm2", "cm", "rm1", "T1")])

    def check(evaluator: str, evaluatee: str, group: str, scores: dict[str, Any],
              comment: str = "", filled: frozenset[tuple[str, str, str]] = frozenset()
              ) -> Accepted | str:
        return check_submission(plan, filled, evaluator=evaluator, evaluatee=evaluatee,
                                group=group, scores=scores, comment=comment)

    good = check("cm2", "cm1", "peer", scored(CM_FORM, 81.5))
    assert isinstance(good, Accepted) and good.total == Decimal("81.5")
    assert "self evaluation" in str(check("cm1", "cm1", "peer", scored(CM_FORM, 80)))
    assert "not one of your expected forms" in str(check("cm2", "rm1", "gm", {}))
    assert "submitted already" in str(check("cm2", "cm1", "peer", scored(CM_FORM, 80),
                                            filled=frozenset({("cm1", "peer", "cm2")})))
    above = check("mk1", "cm1", "marketing", {**scored(CM_FORM, 80), "专业技能": 12})
    assert "专业技能 must be 0 to 10" in str(above)
    assert "has no score" in str(check("rm1", "cm1", "regional", {"专业技能": 5}))
    assert "is not a score" in str(check("rm1", "cm1", "regional",
                                         {**scored(CM_FORM, 80), "执行力": "很好"}))
    manager = check("cm1", "rm1", "sales", {k: str(v) for k, v in
                                           scored(MANAGER_FORM, 66.25).items()})
    assert isinstance(manager, Accepted) and manager.total == Decimal("66.25")
    assert isinstance(check("mk1", "team:T1", "marketing", scored(TEAM_FORM, 90)), Accepted)
    assert "is empty" in str(check("bm1", "team:T1", "gm", {}))
    assert "no item scores" in str(check("bm1", "team:T1", "gm", {"任务完成率": 1}, "好"))
    assert isinstance(check("bm1", "team:T1", "gm", {}, "继续保持"), Accepted)


def test_quarters_as_the_branch_reads_the_calendar() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    # 2026-09-30 17:00 UTC is already 1 October in Shanghai
    assert previous_quarter(datetime(2026, 9, 30, 17, tzinfo=UTC), zone) == "2026Q3"
    assert previous_quarter(datetime(2026, 9, 30, 15, tzinfo=UTC), zone) == "2026Q2"
    assert previous_quarter(datetime(2027, 2, 1, tzinfo=UTC), zone) == "2026Q4"
    assert [str(m) for m in quarter_months("2026Q4")] == ["2026-10", "2026-11", "2026-12"]
    for bad in ("2026Q5", "2026-Q3", "26Q3", "２０２６Q3"):
        with pytest.raises(ValueError):
            quarter_months(bad)


def test_an_evaluation_past_its_deadline_is_found_to_be_woken(
    archive: Archive, roster: None
) -> None:
    with new_session(archive.engine) as session:
        evaluation = open_evaluation(session, branch="SZ01", quarter=Q, run_id="run-1",
                                     deadline=utcnow() - timedelta(minutes=1),
                                     today=utcnow().date())
        session.commit()
        assert overdue_evaluation_runs(session, now=utcnow()) == ["run-1"]
        assert overdue_evaluation_runs(session, now=utcnow() - timedelta(hours=1)) == []
        evaluation.status = "computing"
        session.add(evaluation)
        session.commit()
        assert overdue_evaluation_runs(session, now=utcnow()) == []


# --------------------------------------------------------------------------- the flow


def _evaluation(archive: Archive) -> Evaluation | None:
    with new_session(archive.engine) as session:
        return session.exec(select(Evaluation).where(Evaluation.quarter == Q)).first()


def _drive(archive: Archive) -> ChainDriver:
    def run_id() -> str | None:
        evaluation = _evaluation(archive)
        return evaluation.flow_run_id if evaluation else None

    def attempts() -> int:
        evaluation = _evaluation(archive)
        return evaluation.form_attempts if evaluation else 0

    driver = ChainDriver(
        lambda: quarterly_evaluation(branch="SZ01", quarter=Q, wait="pause", poll_interval=0.1),
        run_id=run_id, attempts=attempts).start()
    driver.wait_paused()
    return driver


def _shown(driver: ChainDriver) -> str:
    """The form's description as the Prefect UI renders its text (markdown escapes undone)."""
    raw = driver.description()
    text = json.loads(raw) if raw.startswith('"') else raw
    return re.sub(r"\\(.)", r"\1", text)


def _form(driver: ChainDriver, evaluator: str, evaluatee: str, group: str,
          scores: dict[str, Any], comment: str = "", secret: str | None = None) -> None:
    driver.submit({"evaluator": evaluator, "secret": secret or f"pw-{evaluator}",
                   "evaluatee": evaluatee, "group": group, "scores": scores,
                   "comment": comment})


def _archived_results(archive: Archive) -> list[dict[str, Any]]:
    with new_session(archive.engine) as session:
        event = session.exec(select(AuditEvent).where(
            AuditEvent.action == "evaluation-archived")).one()
    results: list[dict[str, Any]] = json.loads(event.content)["details"]["results"]
    return results


#: Test A: every expected form of SZ01 (sample roster) with its total.
PERSONAL = [("cm1", "cm2", "peer", 80), ("cm1", "cm3", "peer", 90),
            ("cm1", "rm1", "regional", 70), ("cm1", "mk1", "marketing", 60),
            ("cm2", "cm1", "peer", 88), ("cm2", "cm3", "peer", 92),
            ("cm2", "rm1", "regional", 85), ("cm2", "mk1", "marketing", 75),
            ("cm3", "cm1", "peer", 60), ("cm3", "cm2", "peer", 70),
            ("cm3", "rm1", "regional", 65), ("cm3", "mk1", "marketing", 72.5),
            ("rm1", "cm1", "sales", 70), ("rm1", "cm2", "sales", 80),
            ("rm1", "cm3", "sales", 75), ("rm1", "mk1", "marketing", 90),
            ("rm1", "bm1", "gm", 50)]
ROLES = {"cm1": ("cm", "T1"), "cm2": ("cm", "T1"), "cm3": ("cm", "T2"), "rm1": ("regional", "R1")}


@pytest.mark.usefixtures("development")  # the sample evaluators sign with pw-<user>
def test_every_form_in_archives_evl_with_the_computed_results(
    prefect_api: None, archive: Archive, roster: None, user, tmp_path: Path
) -> None:
    driver = _drive(archive)
    first = _shown(driver)
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(driver.flow_run_id()).name == "季度考评 SZ01 2026Q3"
    assert "季度考评 SZ01 2026Q3" in first and "0 / 21 forms" in first
    assert "team:T1" in first and "本岗位职责履职情况 20" in first and "邓琪" in first
    _form(driver, "cm2", "cm1", "peer", {**scored(CM_FORM, 80), "专业技能": 12})
    assert "专业技能 must be 0 to 10" in _shown(driver)
    _form(driver, "cm1", "cm1", "peer", scored(CM_FORM, 99))
    assert "self evaluation" in _shown(driver)
    _form(driver, "cm3", "rm1", "gm", scored(MANAGER_FORM, 50))
    assert "not one of your expected forms" in _shown(driver)
    _form(driver, "cm2", "cm1", "peer", scored(CM_FORM, 80), secret="wrong")
    assert "unknown evaluator" in _shown(driver)
    for evaluatee, evaluator, group, total in PERSONAL:
        form = CM_FORM if ROLES[evaluatee][0] == "cm" else MANAGER_FORM
        _form(driver, evaluator, evaluatee, group, scored(form, total))
        if (evaluatee, evaluator) == ("cm1", "cm2"):
            _form(driver, "cm2", "cm1", "peer", scored(CM_FORM, 10))  # a second time
            assert "submitted already" in _shown(driver)
    _form(driver, "mk1", "team:T1", "marketing", scored(TEAM_FORM, 85), "目标完成较好")
    _form(driver, "bm1", "team:T1", "gm", {}, "继续保持")
    _form(driver, "mk1", "team:T2", "marketing", scored(TEAM_FORM, 70))
    assert "20 / 21 forms" in _shown(driver)
    _form(driver, "bm1", "team:T2", "gm", {}, "加强营销活动组织")
    serial = driver.join()["SZ01"]
    assert serial.startswith("SZ01-EVL-")
    # the results are compute_evaluation's on the same rows
    rows = [EvaluationRow(n, Q, evaluatee, *ROLES[evaluatee], evaluator, group,
                          Decimal(str(total)))
            for n, (evaluatee, evaluator, group, total) in enumerate(PERSONAL, start=1)]
    expected = result_json(compute_evaluation(rows, quarter=Q))["results"]
    assert _archived_results(archive) == expected
    assert {r["evaluatee_id"]: (r["total"], r["flags"]) for r in expected} == {
        "cm1": ("71.00", []), "cm2": ("84.00", ["star"]), "cm3": ("66.50", ["star"]),
        "rm1": ("74.00", [])}  # cm1: (20 × 85 + 60 × 70 + 20 × 60) / 100
    text = pdf_text(archive.get(serial, actor=user("bm1"))[1], tmp_path)
    for shown in ("季度考评结果", "2026Q3", "杨帆", "（cm1）", "朱琳", "尤佳", "沈亮", "71.00",
                  "84.00", "66.50", "74.00", "明星客户经理", "目标完成较好", "继续保持",
                  "加强营销活动组织", "已收 21 份 / 应收 21 份", "全部评价表已收齐"):
        assert shown in text, shown
    assert "未收评价表" not in text
    with new_session(archive.engine) as session:
        evaluation = session.exec(select(Evaluation)).one()
        assert (evaluation.status, evaluation.evl_serial, evaluation.closed_reason) == (
            "archived", serial, "all_in")
        forms = session.exec(select(EvaluationForm)).all()
        assert len(forms) == 21
        assert session.get(WaitingStep, KEY) is None
        assert session.exec(select(LevelChange)).all() == []
        assert session.exec(select(StaffNotice)).all() == []
        refused = session.exec(select(AuditEvent).where(AuditEvent.request_key == KEY,
                                                        AuditEvent.action == "refused")).all()
    assert len(refused) == 5
    # who submitted each form, and when (as the branch reads the clock)
    assert "评价表提交人" in text and "提交时间" in text
    assert local_minute(forms[0].submitted_at, archive.zone) in text
    assert all("pw-" not in e.content for e in refused)


@pytest.mark.usefixtures("development")
def test_at_the_deadline_it_computes_what_is_in_and_starts_the_consequences(
    prefect_api: None, archive: Archive, roster: None, user, tmp_path: Path
) -> None:
    with new_session(archive.engine) as session:
        session.add(TitleRecord(branch="SZ01", cm_id="rm1", title="senior",
                                effective_month="2026-01", kind="opening",
                                document="opening roster"))
        session.commit()
    driver = _drive(archive)
    _form(driver, "cm1", "rm1", "sales", scored(MANAGER_FORM, 50))
    _form(driver, "bm1", "rm1", "gm", scored(MANAGER_FORM, 40))
    _form(driver, "rm1", "cm1", "regional", scored(CM_FORM, 55), "需加强客户维护")
    with new_session(archive.engine) as session:
        assert session.get(WaitingStep, KEY) is not None  # reminded while forms are out
        evaluation = session.exec(select(Evaluation)).one()
        evaluation.deadline = utcnow() - timedelta(seconds=1)  # the deadline passes
        session.add(evaluation)
        session.commit()
    serial = driver.join()["SZ01"]
    results = {r["evaluatee_id"]: r for r in _archived_results(archive)}
    # rm1: (80 × 50 + 10 × 40) / 90 = 48.89; no marketing form
    assert (results["rm1"]["total"], results["rm1"]["flags"]) == (
        "48.89", ["below_60", "convert_to_cm", "group_missing"])
    assert (results["cm1"]["total"], results["cm1"]["flags"]) == (
        "55.00", ["below_60", "group_missing"])
    assert set(results) == {"rm1", "cm1"}  # nobody evaluated cm2 or cm3
    with new_session(archive.engine) as session:
        evaluation = session.exec(select(Evaluation)).one()
        (change,) = session.exec(select(LevelChange)).all()
        notices = {n.cm_id: n for n in session.exec(select(StaffNotice))}
        waiting = {w.request_key for w in session.exec(select(WaitingStep))}
        closed = session.exec(select(AuditEvent).where(
            AuditEvent.action == "evaluation-closed")).one()
    assert evaluation.closed_reason == "deadline" and json.loads(
        closed.content)["details"]["reason"] == "deadline"
    assert (change.cm_id, change.kind, change.from_title, change.to_title, change.status,
            change.month, change.proposed_by) == (
        "rm1", "demotion", "senior", "senior", "proposed", "2026-09", "system")
    assert change.reason.startswith("convert_to_cm")
    assert set(notices) == {"rm1", "cm1"}
    assert evaluation.closed_at is not None
    closed_on = evaluation.closed_at.astimezone(archive.zone).date()
    for notice in notices.values():
        assert (notice.kind, notice.month, notice.due, notice.status) == (
            "training", Q, closed_on + timedelta(days=7), "open")
        assert json.loads(notice.details)["evaluation"] == serial
    assert waiting == {f"notice:SZ01:{n.id}" for n in notices.values()}  # evaluation's gone
    text = pdf_text(archive.get(serial, actor=user("bm1"))[1], tmp_path)
    for shown in ("48.89", "55.00", "未收评价表", "邓琪（mk1）", "有评价组未评",
                  "转为销售类客户经理", "截止时间已到", "需加强客户维护", "已收 3 份 / 应收 21 份"):
        assert shown in text, shown


def _awaits(driver: ChainDriver) -> set[str]:
    with get_client(sync_client=True) as client:
        tags = set(client.read_flow_run(driver.flow_run_id()).tags)
    assert "branch:SZ01" in tags
    return {t for t in tags if t.startswith("await:")}


def _inbox(cli: Callable[..., Any], user: str) -> list[dict[str, str]]:
    result = cli("inbox", "--format", "json", user=user)
    assert result.code == 0, (result.out, result.err)
    return [r for r in json.loads(result.out) if r["kind"] == "季度考评"]


@pytest.mark.usefixtures("development")
def test_evaluators_owing_forms_have_it_in_their_inbox_and_the_run_awaits_their_roles(
    prefect_api: None, archive: Archive, roster: None, cli: Callable[..., Any]
) -> None:
    driver = _drive(archive)
    run_id = driver.flow_run_id()
    assert _awaits(driver) == {"await:cm", "await:regional_manager", "await:marketing",
                               "await:branch_manager"}
    (mine,) = _inbox(cli, "cm3")
    assert (mine["subject"], mine["step_label"], mine["roles"], mine["pdf_url"]) == (
        "2026Q3 季度考评：待填 3 份", "填写考评表", "cm", "")
    assert mine["run_name"] == "季度考评 SZ01 2026Q3"
    assert mine["run_url"].endswith(f"/runs/flow-run/{run_id}")
    for evaluatee, group in (("cm1", "peer"), ("cm2", "peer")):
        _form(driver, "cm3", evaluatee, group, scored(CM_FORM, 80))
    assert _inbox(cli, "cm3")[0]["subject"] == "2026Q3 季度考评：待填 1 份"
    _form(driver, "cm3", "rm1", "sales", scored(MANAGER_FORM, 75))
    assert _inbox(cli, "cm3") == []  # every form of theirs is in
    assert [r["subject"] for r in _inbox(cli, "cm1")] == ["2026Q3 季度考评：待填 3 份"]
    assert "await:cm" in _awaits(driver)  # cm1 and cm2 still owe theirs
    for evaluatee, group in (("cm1", "marketing"), ("cm2", "marketing"), ("cm3", "marketing"),
                             ("rm1", "marketing")):
        form = MANAGER_FORM if evaluatee == "rm1" else CM_FORM
        _form(driver, "mk1", evaluatee, group, scored(form, 70))
    _form(driver, "mk1", "team:T1", "marketing", scored(TEAM_FORM, 80))
    _form(driver, "mk1", "team:T2", "marketing", scored(TEAM_FORM, 80))
    assert _inbox(cli, "mk1") == [] and "await:marketing" not in _awaits(driver)
    assert _inbox(cli, "bm1")[0]["subject"] == "2026Q3 季度考评：待填 3 份"
    with new_session(archive.engine) as session:
        evaluation = session.exec(select(Evaluation)).one()
        evaluation.deadline = utcnow() - timedelta(seconds=1)  # the deadline passes
        session.add(evaluation)
        session.commit()
    assert driver.join()["SZ01"].startswith("SZ01-EVL-")
    deadline = time.monotonic() + 30  # the completion hook has run by now; allow for slowness
    while _awaits(driver) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _awaits(driver) == set()
    assert _inbox(cli, "cm1") == [] and _inbox(cli, "bm1") == []


def test_bad_parameters_are_refused_before_anything_opens(
    prefect_api: None, archive: Archive, roster: None
) -> None:
    with pytest.raises(BadInput, match="deadline_days"):
        quarterly_evaluation(branch="SZ01", quarter=Q, deadline_days=0, wait="pause")
    with pytest.raises(BadInput, match="quarter"):
        quarterly_evaluation(branch="SZ01", quarter="2026-09", wait="pause")
    assert _evaluation(archive) is None
