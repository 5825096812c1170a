"""The manager's inbox (SPEC §9): runs named for what they are, tagged with their branch and
the roles that may sign now (the tags move with the chain), and 待我签批 -- the steps a user
may sign now -- on the CLI and the archive page, linked to the Prefect run and the PDF."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from brokerflow.approvals.chain import FILING_CHAIN, Decision
from brokerflow.approvals.filings import create_filing
from brokerflow.approvals.inbox import FILL_FORMS_LABEL, RESUBMIT, WaitingRequest, inbox_items
from brokerflow.approvals.run_labels import moved_tags, run_name, waiting_tags
from brokerflow.archive.service import Archive
from brokerflow.flows.filing import filing_chain
from brokerflow.kernel.db import new_session
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import Filing
from tests.support.browser import chromium
from tests.support.chain_driver import ChainDriver
from tests.support.services import prefect_server
from tests.support.web import serving

pytestmark = pytest.mark.usefixtures("development")  # sample signers sign with pw-<user>

SUBJECT = "2027年度营销方案"
DOCS = Path(__file__).resolve().parent.parent / "docs"


# --------------------------------------------------------------------------- the pure rules


def _view(user_id: str, *roles: str, branch: str = "HQ") -> UserView:
    return UserView(user_id=user_id, name=user_id, branch=branch, roles=frozenset(roles))


def _request(step: str, **changes: object) -> WaitingRequest:
    values: dict[str, object] = dict(
        kind="报批", request_key="filing:1", revision=1, step=step, flow_run_id="run-1",
        chain=FILING_CHAIN, submitter_id="bk1", branch="SZ01", signer_branch=None,
        serial="SZ01-FIL-2026-000001", subject=SUBJECT, run_name="报批 x",
        since=datetime(2026, 11, 2, tzinfo=UTC))
    return WaitingRequest(**(values | changes))  # type: ignore[arg-type]


def test_tags_move_and_names_read_like_the_paper() -> None:
    assert waiting_tags(branch="SZ01", roles=("risk", "compliance")) == [
        "await:compliance", "await:risk", "branch:SZ01"]
    assert moved_tags(["filing", "await:brokerage_office", "branch:SZ01"],
                      add=["await:channel_dept", "branch:SZ01"]) == [
        "filing", "branch:SZ01", "await:channel_dept"]
    assert moved_tags(["await:vp", "branch:SZ01"]) == ["branch:SZ01"]
    assert run_name("薪酬", "SZ01", "", "2026-10") == "薪酬 SZ01 2026-10"
    assert len(run_name("报批", "S", "长" * 300)) == 120


def test_an_inbox_holds_what_the_chain_rules_let_a_user_sign_now() -> None:
    bo1, bo2, ch1 = (_view("bo1", "brokerage_office"), _view("bo2", "brokerage_office"),
                     _view("ch1", "channel_dept"))
    first = _request("office_receive")
    assert [i.step_label for i in inbox_items([(first, [])], bo1)] == [
        FILING_CHAIN.step("office_receive").label]
    assert inbox_items([(first, [])], ch1) == []  # not their step (yet)
    assert inbox_items([(first, [])], _view("bk1", "brokerage_office")) == []  # the submitter
    signed = [Decision("office_receive", "bo1", "brokerage_office", "approve")]
    at_office_again = [*signed, Decision("channel_review", "ch1", "channel_dept", "approve"),
                       Decision("countersign", "risk1", "risk", "approve", department="risk")]
    later = _request("office_complete")
    assert inbox_items([(later, at_office_again)], bo1) == []  # signed an earlier step
    assert [i.roles for i in inbox_items([(later, at_office_again)], bo2)] == [
        ("brokerage_office",)]
    assert inbox_items([(_request("channel_review"), [])], ch1) == []  # flow not there yet
    returned = _request(RESUBMIT, chain=None)
    assert [i.request.step for i in inbox_items([(returned, [])], _view("bk1"))] == [RESUBMIT]
    assert inbox_items([(returned, [])], bo1) == []


def test_evaluation_forms_owed_are_in_their_evaluators_inboxes() -> None:
    collecting = _request("forms", kind="季度考评", chain=None, serial="",
                          subject="2026Q3 季度考评",
                          owed={"cm1": ("cm", "cm"), "bm1": ("branch_manager",)})
    (item,) = inbox_items([(collecting, [])], _view("cm1", "cm", branch="SZ01"))
    assert (item.request.subject, item.step_label, item.roles) == (
        "2026Q3 季度考评：待填 2 份", FILL_FORMS_LABEL, ("cm",))
    assert inbox_items([(collecting, [])], _view("cm2", "cm", branch="SZ01")) == []  # owes none
    assert inbox_items([(collecting, [])], _view("cm1", "cm", branch="BJ02")) == []


# --------------------------------------------------------------------------- a real chain


def _filing(archive: Archive, filing_id: int) -> Filing:
    with new_session(archive.engine) as session:
        filing = session.get(Filing, filing_id)
        assert filing is not None
        return filing


def _start_filing(archive: Archive, user: Callable[[str], UserView],
                  api_url: str | None = None, subject: str = SUBJECT) -> tuple[int, ChainDriver]:
    """Submit a filing as bk1 and run its chain in a thread (on Prefect ``api_url`` when given:
    the thread does not inherit this one's Prefect settings)."""
    with new_session(archive.engine) as session:
        filing = create_filing(session, branch="SZ01", kind="marketing_plan", subject=subject,
                               body="拟于2027年开展银行网点驻点营销。", submitter=user("bk1"))
        session.commit()
        filing_id = filing.id
    assert filing_id is not None

    def run() -> str:
        if api_url is None:
            return filing_chain(filing_id=filing_id, wait="pause", poll_interval=0.1)
        with temporary_settings({PREFECT_API_URL: api_url}):
            return filing_chain(filing_id=filing_id, wait="pause", poll_interval=0.1)

    driver = ChainDriver(
        run, run_id=lambda: _filing(archive, filing_id).flow_run_id,
        attempts=lambda: _filing(archive, filing_id).form_attempts,
    ).start()
    driver.wait_paused()
    return filing_id, driver


def _run(run_id: UUID) -> tuple[str, set[str]]:
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
    return run.name, set(run.tags)


def _awaits(run_id: UUID) -> set[str]:
    return {t for t in _run(run_id)[1] if t.startswith("await:")}


def _inbox(cli: Callable[..., object], user: str) -> list[dict[str, str]]:
    result = cli("inbox", "--format", "json", user=user)
    assert result.code == 0, (result.out, result.err)  # type: ignore[attr-defined]
    rows: list[dict[str, str]] = json.loads(result.out)  # type: ignore[attr-defined]
    return rows


def test_a_filing_run_is_named_tagged_and_in_the_right_inboxes(
    archive: Archive, user: Callable[[str], UserView], prefect_api: None,
    cli: Callable[..., object],
) -> None:
    filing_id, chain = _start_filing(archive, user)
    run_id = chain.flow_run_id()
    serial = _filing(archive, filing_id).current_serial
    name, tags = _run(run_id)
    assert name == f"报批 {serial} {SUBJECT}"
    assert {"branch:SZ01", "await:brokerage_office"} <= tags and _awaits(run_id) == {
        "await:brokerage_office"}

    mine = _inbox(cli, "bo1")
    assert [(r["run_name"], r["step"], r["roles"]) for r in mine] == [
        (name, "office_receive", "brokerage_office")]
    assert mine[0]["run_url"].endswith(f"/runs/flow-run/{run_id}")
    assert mine[0]["pdf_url"] == archive.document_link(serial)
    assert _inbox(cli, "ch1") == [] and _inbox(cli, "bk1") == []  # not yet; the submitter
    text = cli("inbox", user="bo1")
    assert text.code == 0 and "待我签批" in text.out and name in text.out  # type: ignore[attr-defined]
    assert f"/runs/flow-run/{run_id}" in text.out  # type: ignore[attr-defined]

    chain.sign("bo1", opinion="转渠道管理部")
    assert _awaits(run_id) == {"await:channel_dept"}
    assert _inbox(cli, "bo1") == [] and len(_inbox(cli, "ch1")) == 1
    chain.sign("ch1", opinion="请合规、风控会签", departments=["compliance", "risk"])
    assert _awaits(run_id) == {"await:compliance", "await:risk"}
    chain.sign("risk1", opinion="风险可控")
    assert _awaits(run_id) == {"await:compliance"}
    assert _inbox(cli, "risk1") == [] and len(_inbox(cli, "comp1")) == 1
    chain.sign("comp1", opinion="合规无异议")
    assert _inbox(cli, "bo1") == []  # signed office_receive: office_complete is bo2's
    assert [r["step"] for r in _inbox(cli, "bo2")] == ["office_complete"]
    chain.sign("bo2", opinion="已报备")
    chain.sign("vp1", opinion="同意执行")
    assert chain.join().startswith("SZ01-FOP-")
    deadline = time.monotonic() + 30  # the completion hook has run by now; allow for slowness
    while _awaits(run_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    name, tags = _run(run_id)
    assert _awaits(run_id) == set() and "branch:SZ01" in tags and name.startswith("报批 ")
    assert _inbox(cli, "vp1") == []


# --------------------------------------------------------------------------- in a browser


@pytest.fixture
def served_prefect(tmp_path: Path) -> Iterator[str]:
    """A Prefect server with its UI (the test harness serves none); the flows of this test
    report to it.  Its UI's base URL."""
    with (prefect_server(tmp_path / "prefect") as server,
          temporary_settings({PREFECT_API_URL: server.api_url})):
        yield server.api_url.removesuffix("/api")


@pytest.mark.slow
def test_the_archive_page_lists_my_steps_and_the_prefect_ui_filters_them_by_tag(
    archive: Archive, user: Callable[[str], UserView], served_prefect: str, tmp_path: Path,
) -> None:
    filing_id, chain = _start_filing(archive, user, f"{served_prefect}/api")
    run_id = chain.flow_run_id()
    name = _run(run_id)[0]
    _, other = _start_filing(archive, user, f"{served_prefect}/api", subject="网点驻点营销方案")
    other.sign("bo1", opinion="转渠道管理部")  # the other run waits for the channel dept now
    other_name = _run(other.flow_run_id())[0]
    assert _awaits(other.flow_run_id()) == {"await:channel_dept"}
    serial = _filing(archive, filing_id).current_serial
    shots = {"archive": tmp_path / "inbox-archive-page.png",
             "prefect": tmp_path / "inbox-prefect-ui.png"}
    with serving(archive, prefect_ui=served_prefect) as base, chromium() as driver:
        wait = WebDriverWait(driver, 60)
        try:
            driver.get(base + "/login")
            wait.until(ec.visibility_of_element_located((By.ID, "user_id"))).send_keys("bo1")
            driver.find_element(By.ID, "secret").send_keys("pw-bo1")
            driver.find_element(By.ID, "login").click()
            items = wait.until(ec.visibility_of_element_located((By.ID, "inbox-items")))
            assert name in items.text and "经纪业务综合室 接收转报" in items.text, items.text
            assert other_name not in items.text  # signed by bo1 already: not theirs
            pdf = items.find_element(By.CLASS_NAME, "inbox-pdf")
            assert pdf.get_attribute("href") == f"{base}/documents/{quote(serial)}.pdf"
            assert driver.save_screenshot(str(shots["archive"]))
            items.find_element(By.CLASS_NAME, "inbox-run").click()
            wait.until(lambda d: d.current_url.endswith(f"/runs/flow-run/{run_id}"))
            wait.until(ec.visibility_of_element_located(
                (By.XPATH, "//*[contains(@class, 'state-badge')][normalize-space()='Paused']")))
            wait.until(lambda d: name in d.find_element(By.TAG_NAME, "body").text)

            tag = "await:brokerage_office"
            driver.get(f"{served_prefect}/runs")  # both runs, before the filter
            wait.until(lambda d: other_name in d.find_element(By.TAG_NAME, "body").text)
            driver.get(f"{served_prefect}/runs?tag={quote(tag)}")  # Runs → Tags: the to-do list
            wait.until(ec.visibility_of_element_located((By.XPATH, (
                "//*[contains(@class, 'flow-run-tags-input')]"
                f"[contains(normalize-space(), '{tag}')]"))))  # the Tags filter is set
            wait.until(lambda d: name in d.find_element(By.TAG_NAME, "body").text
                       and other_name not in d.find_element(By.TAG_NAME, "body").text)
            assert driver.save_screenshot(str(shots["prefect"]))
        except Exception:
            driver.save_screenshot(str(tmp_path / "inbox-failure.png"))
            (tmp_path / "inbox-failure.html").write_text(driver.page_source)
            raise
    chain.sign("bo1", opinion="转渠道管理部")
    assert _awaits(run_id) == {"await:channel_dept"}
    if os.environ.get("BROKERFLOW_UPDATE_SCREENSHOTS") == "1":
        for shot in shots.values():
            (DOCS / shot.name).write_bytes(shot.read_bytes())
