"""Client attribution verification end to end, conflicts, transfers, malicious flags, masked ID
numbers everywhere, and the payroll link."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from brokerflow.approvals.attributions import (
    effective_attributions,
    make_effective,
    preregister,
    request_key,
    signed_serial,
)
from brokerflow.approvals.signing import unbind_dead_run
from brokerflow.archive.service import Archive
from brokerflow.flows.attribution import client_attribution
from brokerflow.flows.closing import counted_by_attribution
from brokerflow.flows.confirmation_lists import archive_confirmation_lists
from brokerflow.kernel.calendar import local_minute
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import ArchiveEntry, Attribution, ClientIdentity
from brokerflow.payroll.compute import compute_from_directory
from tests.support.chain_driver import ChainDriver, run_found_by_name
from tests.support.databases import stored_bytes
from tests.support.payroll_data import POLICY, client_row, staff_row, write_export
from tests.support.pdf import pdf_text

pytestmark = pytest.mark.usefixtures("development")  # sample signers sign with pw-<user>

# The example number of GB 11643 (check digit X); others are made by ``make_id`` below.
ID_A = "11010519491231002X"
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def make_id(first17: str) -> str:
    """An independent implementation of the GB 11643 check digit, for test data."""
    return first17 + "10X98765432"[sum(int(c) * w for c, w in zip(first17, WEIGHTS,
                                                                      strict=True)) % 11]


ID_B = make_id("44030519900101123")


def _attribution(archive: Archive, attribution_id: int) -> Attribution:
    with new_session(archive.engine) as session:
        a = session.get(Attribution, attribution_id)
        assert a is not None
        return a


def _verify(archive: Archive, attribution_id: int) -> ChainDriver:
    driver = ChainDriver(
        lambda: client_attribution(attribution_id=attribution_id, wait="pause",
                                   poll_interval=0.1),
        run_id=lambda: _attribution(archive, attribution_id).flow_run_id,
        attempts=lambda: _attribution(archive, attribution_id).form_attempts,
    ).start()
    driver.wait_paused()
    return driver


def _id_file(number: str) -> str:
    """The ID number in a private file, as back-office support hands it to the CLI."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".id", delete=False,
                                     encoding="utf-8") as handle:
        handle.write(number + "\n")
    return handle.name


def _preregister(cli, cm: str, number: str, name: str = "张三") -> int:  # type: ignore[no-untyped-def]
    result = cli("attribution", "preregister", "--cm", cm, "--client-name", name,
                 "--id-number-file", _id_file(number), "--asset-size", "800000", "--no-start",
                 user="bk1")
    assert result.code == 0, result.err
    assert number not in result.out + result.err
    return int(result.out.split()[1])


def _through(chain: ChainDriver, account: str, *, review: dict[str, str] | None = None) -> None:
    chain.sign("cc1", opinion="签字核对无误")
    if review is None:
        chain.sign("tm1", opinion="归属无误")
    else:
        chain.submit({"signer": "tm1", "secret": "pw-tm1", **review})
    chain.sign("bm1")
    chain.sign("fm1")
    chain.submit({"signer": "tm1", "secret": "pw-tm1", "decision": "approve",
                  "opinion": "录入", "client_id": account})


def test_verification_happy_path_with_masked_id_everywhere(
    prefect_api: None, archive: Archive, roster: None, cli, user, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    attribution_id = _preregister(cli, "cm1", ID_A)
    chain = _verify(archive, attribution_id)
    attribution = _attribution(archive, attribution_id)
    assert attribution.status == "pending" and attribution.confirmation_serial
    _, cnf = archive.get(attribution.confirmation_serial, actor=user("cm1"))
    text = pdf_text(cnf, tmp_path)
    assert "客户确认登记表" in text and "**************002X" in text and "杨帆" in text
    assert "现场" in text
    chain.sign("bk1")  # the registrar may not review their own registration
    chain.sign("cc1", opinion="签字核对无误")
    chain.sign("tm1")
    chain.sign("bm1")  # any order between the two
    chain.sign("fm1")
    chain.submit({"signer": "tm1", "secret": "pw-tm1", "decision": "approve",
                  "client_id": ""})  # no account number: refused
    assert _attribution(archive, attribution_id).status == "pending"
    chain.submit({"signer": "tm1", "secret": "pw-tm1", "decision": "approve",
                  "opinion": "录入", "client_id": "A0001"})
    assert chain.join() == "effective"
    attribution = _attribution(archive, attribution_id)
    assert (attribution.status, attribution.client_id) == ("effective", "A0001")
    assert attribution.effective_at is not None
    shown = cli("attribution", "show", "A0001", user="tm1")
    assert shown.code == 0 and '"status": "effective"' in shown.out and "002X" in shown.out
    assert cli("attribution", "show", "A0001", user="cm2").code != 0  # another CM's client
    serials = archive_confirmation_lists(archive, branch="SZ01",
                                         month=attribution.effective_at.astimezone(
                                             UTC).strftime("%Y-%m"))
    assert len(serials) == 1
    _, cml = archive.get(serials[0], actor=user("cm1"))
    assert "**************002X" in pdf_text(cml, tmp_path)
    # the clear number is nowhere: documents, database, logs, command output
    for version in archive.store.versions():
        assert ID_A not in pdf_text(archive.store.get(version.key,
                                                      version_id=version.version_id), tmp_path)
    data = stored_bytes(archive.settings.database_url)  # SQLite's files, or PostgreSQL's dump
    assert ID_A.encode() not in data and ID_A.lower().encode() not in data
    assert ID_A not in caplog.text


def _signed(archive: Archive, attribution_id: int) -> str:
    with new_session(archive.engine) as session:
        return signed_serial(session, attribution_id=attribution_id)


def test_effective_attribution_archives_the_signed_confirmation(
    prefect_api: None, archive: Archive, roster: None, cli, user, tmp_path: Path
) -> None:
    attribution_id = _preregister(cli, "cm1", ID_A)
    chain = _verify(archive, attribution_id)
    _through(chain, "A0009")
    assert chain.join() == "effective"
    attribution = _attribution(archive, attribution_id)
    serial = _signed(archive, attribution_id)
    assert serial.startswith("SZ01-CNF-") and serial != attribution.confirmation_serial
    _, pdf = archive.get(serial, actor=user("cm1"))  # filed under the CM: the CM reads it
    text = pdf_text(pdf, tmp_path)
    assert "签批生效" in text and "A0009" in text and "杨帆" in text
    assert attribution.effective_at is not None
    assert local_minute(attribution.effective_at, archive.zone) in text
    assert attribution.confirmation_serial in text  # names the form the client signed
    for name in ("褚燕", "陈杰", "周涛", "冯刚"):  # the trading manager signs twice
        assert name in text, name
    assert text.count("陈杰") >= 2 and text.count("同意") >= 5
    for opinion in ("签字核对无误", "归属无误", "录入"):
        assert opinion in text
    assert "**************002X" in text and ID_A not in text
    # a new run of the finished chain (its run handed over) finds the record: no second one
    with new_session(archive.engine) as session:
        unbind_dead_run(session, Attribution, attribution_id, actor_id="system",
                        request_key=request_key(attribution_id), reason="test")
        session.commit()
    assert client_attribution(attribution_id=attribution_id, wait="pause") == "effective"
    with new_session(archive.engine) as session:
        cnfs = session.exec(select(ArchiveEntry).where(ArchiveEntry.doc_type == "CNF")).all()
    assert sorted(e.serial for e in cnfs) == sorted([attribution.confirmation_serial, serial])
    assert all(e.status == "current" for e in cnfs)  # the registration form stays current
    shown = cli("attribution", "show", "A0009", user="tm1")
    assert shown.code == 0 and f'"signed_serial": "{serial}"' in shown.out


def test_conflict_transfer_keep_and_malicious(
    prefect_api: None, archive: Archive, roster: None, cli, user, tmp_path: Path
) -> None:
    first = _preregister(cli, "cm1", ID_B)
    chain = _verify(archive, first)
    _through(chain, "B0001")
    assert chain.join() == "effective"

    second = _preregister(cli, "cm2", ID_B)
    assert _attribution(archive, second).status == "conflict"
    chain = _verify(archive, second)
    chain.sign("cc1")
    chain.sign("tm1")  # approving without resolving the conflict is refused
    assert "resolve" in chain.description()
    _through_rest = {"resolution": "transfer", "decision": "approve",
                     "opinion": "客户本人申请变更营销经理"}
    chain.submit({"signer": "tm1", "secret": "pw-tm1", **_through_rest})
    chain.sign("fm1")
    chain.sign("bm1")
    chain.submit({"signer": "tm1", "secret": "pw-tm1", "decision": "approve",
                  "opinion": "录入", "client_id": "B0001"})
    assert chain.join() == "effective"
    old, new = _attribution(archive, first), _attribution(archive, second)
    assert (old.status, new.status) == ("ended", "effective")
    assert old.ended_at == new.effective_at  # the old one ends the moment the new one counts

    third = _preregister(cli, "cm3", ID_B)
    chain = _verify(archive, third)
    chain.sign("cc1")
    chain.submit({"signer": "tm1", "secret": "pw-tm1", "resolution": "keep",
                  "decision": "reject", "opinion": "归属不变"})
    assert chain.join() == "rejected"
    assert _attribution(archive, second).status == "effective"
    _, record = archive.get(_signed(archive, third), actor=user("tm1"))
    text = pdf_text(record, tmp_path)
    assert "未通过" in text and "维持原归属" in text and "归属不变" in text

    assert cli("attribution", "flag-malicious", "B0001", "--reason", "x", user="cc1").code == 3
    flagged = cli("attribution", "flag-malicious", "B0001", "--reason", "批量恶意开户",
                  user="tm1")
    assert flagged.code == 0, flagged.err
    listing = cli("attribution", "list", "--format", "json", user="bm1")
    assert '"malicious": true' in listing.out


@pytest.mark.parametrize(("number", "problem"), [
    (ID_A[:-1] + "1", "check digit"),
    (make_id("11010519491331002"), "birth date"),
    (ID_A[:17], "18 characters"),
    ("1101051949123100ZX", "17 digits"),
])
def test_invalid_id_numbers_exit_2_and_write_nothing(
    archive: Archive, roster: None, cli, number: str, problem: str
) -> None:
    result = cli("attribution", "preregister", "--cm", "cm1", "--client-name", "李四",
                 "--id-number-file", _id_file(number), "--asset-size", "1000", "--no-start",
                 user="bk1")
    assert result.code == 2 and problem in result.err and "--id-number" in result.err
    assert number not in result.err
    with new_session(archive.engine) as session:
        assert session.exec(select(ClientIdentity)).first() is None
        assert session.exec(select(Attribution)).first() is None


def test_payroll_counts_only_effective_attributions_from_their_month(
    archive: Archive, user, tmp_path: Path
) -> None:
    registrar = user("bk1")  # read before the writing session below holds the lock
    with new_session(archive.engine) as session:
        counted = preregister(session, registrar=registrar, cm_id="cm1", client_name="王五",
                              id_number=ID_A, asset_size="1", hash_key="k")
        pending = preregister(session, registrar=registrar, cm_id="cm1", client_name="赵六",
                              id_number=ID_B, asset_size="1", hash_key="k")
        make_effective(session, attribution=counted, client_id="P1", actor_id="tm1",
                       at=datetime(2026, 10, 15, 2, 0, tzinfo=UTC))
        session.commit()
        assert pending.status == "pending"
        rule = counted_by_attribution(effective_attributions(session, branch="SZ01"),
                                      archive.zone)
    exports = {}
    for month in ("2026-09", "2026-10"):
        months = [m for m in ("2026-09", "2026-10") if m <= month]
        rows = [client_row(client, "cm1", month=m, gross_commission="1000")
                for m in months for client in ("P1", "P2")]  # the CRM column says yes
        exports[month] = write_export(tmp_path / month, clients=rows,
                                      staff=[staff_row("cm1", month=m) for m in months])
    september = compute_from_directory(month="2026-09", data_dir=exports["2026-09"],
                                       policy=POLICY, counts=rule)
    october = compute_from_directory(month="2026-10", data_dir=exports["2026-10"],
                                     policy=POLICY, counts=rule)
    export = exports["2026-10"]
    crm_column = compute_from_directory(month="2026-10", data_dir=export, policy=POLICY)
    assert september.lines[0].net_revenue == 0       # not yet effective at September's end
    assert str(october.lines[0].net_revenue) == "950.00"   # P1 only: 1000 * (1 - 0.05)
    assert str(crm_column.lines[0].net_revenue) == "1900.00"  # the CRM column would count both


def test_preregistration_from_the_prefect_ui_leaves_no_id_number_in_prefect(
    prefect_api: None, archive: Archive, roster: None
) -> None:

    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    run_name = "ui-preregistration-test"

    run_id = run_found_by_name(run_name)

    def rows() -> int:
        with new_session(archive.engine) as session:
            found = session.exec(select(Attribution)).all()
            return len(found) + sum(a.form_attempts for a in found)

    chain = ChainDriver(
        lambda: client_attribution.with_options(flow_run_name=run_name)(
            wait="pause", poll_interval=0.1),
        run_id=run_id, attempts=rows,
    ).start()
    chain.wait_paused()
    form = {"signer": "bk1", "secret": "pw-bk1", "cm": "cm2", "client_name": "孙七",
            "asset_size": "50000"}
    before = chain.wait_paused()

    resume_flow_run(UUID(run_id()), run_input={**form, "id_number": ID_A[:-1] + "0"})
    deadline = time.monotonic() + 30
    while chain.wait_paused() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rows() == 0  # a bad ID number writes nothing; the form waits again
    chain.submit({**form, "id_number": ID_A})
    chain.wait_paused()
    with new_session(archive.engine) as session:
        attribution = session.exec(select(Attribution)).one()
    assert attribution.cm_id == "cm2" and attribution.flow_run_id == run_id()
    with get_client(sync_client=True) as client:
        for key in ("paused-preregister-0-response", "paused-preregister-1-response"):
            with pytest.raises(Exception):  # noqa: B017 - deleted: any lookup error will do
                client.read_flow_run_input(UUID(run_id()), key)
