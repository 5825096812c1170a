"""Six months of a customer manager's working life through the real closing and level-change
flows (issue 13): trainee → conversion → two good months → promotion approved → two bad months
→ demotion confirmed.

Each month is closed (PAY, sign-off, PAS) on the 1st of the month after it, as the branch does;
applications and confirmations are signed in the Prefect forms a few days later.  A change
approved in month M is the title of M+1's closing (SPEC §8.3).  The wall clock of brokerflow's
own records (``kernel.calendar``) is set to those days; Prefect's is left alone.

Policy tests/data/policy_simple.toml (assistant from 0, manager from 1,000,000 average assets).
cm1 is hired 2026-10-15: in January 2027 the trainee months are over.  Every month cm1 opens
eight valid accounts (purchases 6,000, no assets) with 1,000 commission each, so the monthly
score stays above 60 and only the assets decide the level.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

import brokerflow.kernel.calendar as calendar
from brokerflow.archive.service import Archive
from brokerflow.flows.closing import monthly_closing
from brokerflow.flows.level_change import level_change
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import LevelChange, PayrollRun, TitleRecord
from brokerflow.payroll.records import run_lines
from tests.support.chain_driver import ChainDriver
from tests.support.payroll_data import POLICY, client_row, staff_row, write_export

pytestmark = [pytest.mark.usefixtures("development"), pytest.mark.slow]

#: The old client's assets at each month end (millions): avg_assets_3m decides the level.
ASSETS = {"2026-12": "0", "2027-01": "1200000", "2027-02": "1200000", "2027-03": "1200000",
          "2027-04": "1200000", "2027-05": "300000", "2027-06": "300000"}
MONTHS = ["2027-01", "2027-02", "2027-03", "2027-04", "2027-05", "2027-06"]


class _Clock:
    """``kernel.calendar``'s ``datetime``, answering ``now()`` with a set moment."""

    at = datetime(2027, 2, 1, 2, tzinfo=UTC)

    @classmethod
    def make(cls) -> type[datetime]:
        clock = cls

        class Frozen(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:
                return clock.at if tz is None else clock.at.astimezone(tz)

        return Frozen


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> type[_Clock]:
    monkeypatch.setattr(calendar, "datetime", _Clock.make())
    return _Clock


def _export(directory: Path, month: str) -> Path:
    window = [m for m in ASSETS if m <= month][-3:]
    staff = [staff_row("cm1", month=month, name="杨帆", supervisor_id="sm1",
                       hire_date="2026-10-15"),
             staff_row("sm1", month=month, name="韩梅", position="stationed")]
    clients = [client_row("old1", "cm1", month=m, assets=ASSETS[m]) for m in window]
    clients += [client_row(f"new-{month}-{k}", "cm1", month=month, open_date=f"{month}-0{k + 1}",
                           purchases="6000", gross_commission="1000") for k in range(8)]
    clients += [client_row(f"sm-{month}", "sm1", month=month, purchases="6000")]
    return write_export(directory / month, staff=staff, clients=clients)


def _latest(archive: Archive) -> PayrollRun | None:
    with new_session(archive.engine) as session:
        return session.exec(select(PayrollRun).order_by(col(PayrollRun.id).desc())).first()


def _close(archive: Archive, clock: type[_Clock], tmp_path: Path, month: str
           ) -> dict[str, Any]:
    """Close ``month`` on the 1st of the next month; cm1's stored line."""
    following = calendar.Month.parse(month).minus(-1)
    clock.at = datetime(following.year, following.month, 1, 2, tzinfo=UTC)
    before = _latest(archive)
    before_id = before.id if before else 0

    def fresh() -> PayrollRun | None:
        run = _latest(archive)
        return run if run is not None and run.id != before_id else None

    chain = ChainDriver(
        lambda: monthly_closing(branch="SZ01", month=month, policy=str(POLICY),
                                data_dir=str(_export(tmp_path, month)), wait="pause",
                                poll_interval=0.1, attribution_source="crm"),
        run_id=lambda: (r.flow_run_id if (r := fresh()) else None),
        attempts=lambda: (r.form_attempts if (r := fresh()) else 0),
    ).start()
    chain.wait_paused()
    for signer in ("ca1", "dm1", "bm1"):
        chain.sign(signer)
    assert chain.join().startswith("SZ01-PAS-")
    run = fresh()
    assert run is not None and run.id is not None
    with new_session(archive.engine) as session:
        lines = {line["cm_id"]: line for line in run_lines(session, run_id=run.id)}
    return lines["cm1"]


def _sign_change(archive: Archive, clock: type[_Clock], change_id: int, day: datetime,
                 signers: tuple[str, ...]) -> LevelChange:
    clock.at = day

    def change() -> LevelChange:
        with new_session(archive.engine) as session:
            found = session.get(LevelChange, change_id)
        assert found is not None
        return found

    driver = ChainDriver(
        lambda: level_change(change_id=change_id, wait="pause", poll_interval=0.1),
        run_id=lambda: change().flow_run_id, attempts=lambda: change().form_attempts,
    ).start()
    driver.wait_paused()
    for signer in signers:
        driver.sign(signer, opinion="同意")
    assert driver.join().startswith("SZ01-LVL-")
    return change()


def _apply(cli, clock: type[_Clock], day: datetime, to: str) -> int:  # type: ignore[no-untyped-def]
    clock.at = day
    result = cli("level", "apply", "--cm", "cm1", "--to", to, "--reason", "申请", "--no-start",
                 user="cm1")
    assert result.code == 0, result.err
    found = re.search(r"level change (\d+) submitted", result.out)
    assert found, result.out
    return int(found.group(1))


def test_six_months_from_trainee_to_promotion_and_back(
        prefect_api: None, archive: Archive, roster: None, cli, clock: type[_Clock],  # type: ignore[no-untyped-def]
        tmp_path: Path) -> None:
    with new_session(archive.engine) as session:  # hired as a trainee (opening data)
        session.add(TitleRecord(branch="SZ01", cm_id="cm1", title="trainee",
                                effective_month="2026-10", kind="opening",
                                document="(opening data)"))
        session.commit()
    lines: dict[str, dict[str, Any]] = {}

    # January: the three trainee months are over; the title keeps the trainee level
    lines["2027-01"] = _close(archive, clock, tmp_path, "2027-01")
    assert (lines["2027-01"]["level"], lines["2027-01"]["title"]) == ("trainee", "trainee")
    assert "trainee_conversion_due" in lines["2027-01"]["flags"]
    # conversion applied and approved in February → assistant from March
    conversion = _apply(cli, clock, datetime(2027, 2, 3, 2, tzinfo=UTC), "assistant")
    converted = _sign_change(archive, clock, conversion, datetime(2027, 2, 4, 2, tzinfo=UTC),
                             ("sm1", "pd1", "bm1"))
    assert (converted.kind, converted.status, converted.effective_month) == (
        "conversion", "approved", "2027-03")

    lines["2027-02"] = _close(archive, clock, tmp_path, "2027-02")
    assert lines["2027-02"]["level"] == "trainee"  # approved in February: not yet
    # March and April: the assets reach manager, above the assistant title, twice
    for month in ("2027-03", "2027-04"):
        lines[month] = _close(archive, clock, tmp_path, month)
        assert (lines[month]["title"], lines[month]["asset_level"], lines[month]["level"]) == (
            "assistant", "manager", "assistant")
    assert "promotion_eligible" not in lines["2027-03"]["flags"]
    assert "promotion_eligible" in lines["2027-04"]["flags"]
    assert all("score_below_60" not in line["flags"] for line in lines.values())
    # promotion applied and approved in May → manager from June
    promotion = _apply(cli, clock, datetime(2027, 5, 3, 2, tzinfo=UTC), "manager")
    promoted = _sign_change(archive, clock, promotion, datetime(2027, 5, 4, 2, tzinfo=UTC),
                            ("sm1", "pd1", "bm1"))
    assert (promoted.kind, promoted.effective_month) == ("promotion", "2027-06")

    # May and June: the assets fall back to assistant; in June the title is manager
    lines["2027-05"] = _close(archive, clock, tmp_path, "2027-05")
    assert (lines["2027-05"]["title"], lines["2027-05"]["asset_level"]) == (
        "assistant", "assistant")
    lines["2027-06"] = _close(archive, clock, tmp_path, "2027-06")
    june = lines["2027-06"]
    assert (june["title"], june["asset_level"], june["level"], june["title_next"]) == (
        "manager", "assistant", "assistant", "assistant")
    assert "demotion_due" in june["flags"] and "termination_right" not in june["flags"]
    # the closing proposed the demotion; the branch manager confirms it in July
    with new_session(archive.engine) as session:
        (proposal,) = session.exec(select(LevelChange).where(
            LevelChange.kind == "demotion", LevelChange.cm_id == "cm1")).all()
    assert (proposal.month, proposal.from_title, proposal.to_title, proposal.status) == (
        "2027-06", "manager", "assistant", "proposed")
    assert proposal.id is not None
    demoted = _sign_change(archive, clock, proposal.id, datetime(2027, 7, 2, 2, tzinfo=UTC),
                           ("bm1",))
    assert (demoted.status, demoted.effective_month) == ("approved", "2027-08")

    with new_session(archive.engine) as session:
        titles = [(t.title, t.effective_month, t.document[:9]) for t in session.exec(
            select(TitleRecord).where(TitleRecord.cm_id == "cm1")
            .order_by(col(TitleRecord.effective_month)))]
    assert titles == [("trainee", "2026-10", "(opening "), ("assistant", "2027-03", "SZ01-LVL-"),
                      ("manager", "2027-06", "SZ01-LVL-"), ("assistant", "2027-08", "SZ01-LVL-")]
    # each month continued from the month before: the level and pay follow the titles
    assert [lines[m]["level"] for m in MONTHS] == [
        "trainee", "trainee", "assistant", "assistant", "assistant", "assistant"]
