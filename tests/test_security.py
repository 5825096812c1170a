"""Issue 11: each attack of the security review, performed against the real parts (SQLite,
the S3 endpoint over HTTP, the archive page over HTTP, the command line) and seen refused and
logged.  docs/security.md maps every finding to its control and to the test here (or
elsewhere) that proves it."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import hypothesis
import pyotp
import pytest
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from minio import Minio
from minio.error import S3Error
from openpyxl import load_workbook
from sqlmodel import col, select

from brokerflow.app.crm_exports import upload_export
from brokerflow.app.s3server import MotoS3Server
from brokerflow.approvals.attributions import make_effective, preregister
from brokerflow.approvals.chain import FormCheck, Step, Waiting
from brokerflow.approvals.decisions import record_decision
from brokerflow.approvals.forms import describe_return, describe_submission, describe_waiting
from brokerflow.approvals.waiting import prefect_sqlite_file
from brokerflow.archive.layout import void_marker_key
from brokerflow.archive.service import Archive, DocumentSpec, open_archive
from brokerflow.flows.closing import monthly_closing
from brokerflow.kernel.audit import chain_hash
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import AccessDenied, BadInput
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import (
    AccessLogEntry,
    ApprovalDecision,
    ArchiveEntry,
    AuditEvent,
    AuditHead,
    PayrollRun,
    SerialCounter,
    SerialRecord,
    User,
)
from brokerflow.kernel.roster import identify, load_roster
from brokerflow.kernel.settings import load_settings
from brokerflow.kernel.totp import enrol
from brokerflow.payroll.starts import issue_start_ticket
from tests.support.chain_driver import ChainDriver
from tests.support.paths import ROSTER_CSV, console_script
from tests.support.payroll_data import (
    MONTH,
    POLICY,
    approve_pay_rules,
    client_row,
    staff_row,
    write_export,
)
from tests.support.stack_process import clean_env
from tests.support.web import serving

ID_NUMBER = "11010519491231002X"


def _audited(archive: Archive, action: str) -> list[dict[str, object]]:
    with new_session(archive.engine) as session:
        rows = session.exec(select(AuditEvent).where(AuditEvent.action == action)
                            .order_by(col(AuditEvent.id))).all()
    return [json.loads(r.content) for r in rows]


def _refused(archive: Archive, action: str) -> list[AccessLogEntry]:
    with new_session(archive.engine) as session:
        return list(session.exec(select(AccessLogEntry).where(
            AccessLogEntry.action == action, AccessLogEntry.allowed == False)))  # noqa: E712


# --------------------------------------------------------------------------- 1 roster


def test_roster_changes_are_audited_leavers_lose_every_right_and_one_admin_stays(
    cli, archive: Archive, tmp_path: Path
) -> None:
    assert cli("roster", "load", str(ROSTER_CSV)).code == 0  # the first load is open
    (loaded,) = _audited(archive, "roster-loaded")
    assert loaded["actor"] == "(first load)"
    assert "admin1" in loaded["details"]["added"]  # type: ignore[index]

    assert cli("roster", "disable", "cm1", "--reason", "辞职", user="bm1").code == 3  # no admin
    assert cli("roster", "disable", "cm1", "--reason", "辞职", user="admin1").code == 0
    gone = cli("archive", "search", user="cm1")
    assert gone.code == 3 and "left on" in gone.err
    assert identify(archive.engine, user_id="cm1", secret="pw-cm1") is None  # no signature
    (disabled,) = _audited(archive, "user-disabled")
    assert disabled["actor"] == "admin1" and disabled["details"]["reason"] == "辞职"  # type: ignore[index]

    last = cli("roster", "disable", "admin1", "--reason", "x", user="admin1")
    assert last.code == 3 and "last active admin" in last.err
    demote = tmp_path / "demote.csv"
    demote.write_text("user_id,name,roles,branch,team,supervisor_id,secret\n"
                      "admin1,系统管理员,brokerage_office,HQ,,,\n", encoding="utf-8")
    refused = cli("roster", "load", str(demote), user="admin1")
    assert refused.code == 2 and "last active admin" in refused.err
    assert cli("archive", "search", user="admin1").code == 0  # still an admin, still in
    assert len(_audited(archive, "roster-loaded")) == 1  # the refused load wrote nothing


# --------------------------------------------------------------------------- 2 moto


def test_the_moto_test_server_refuses_unsigned_requests_and_its_reset_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="brokerflow.s3server")
    server = MotoS3Server(access_key="guarded-key")
    started = server.refused  # its own readiness probe is unsigned too
    try:
        host = server.endpoint.split("://", 1)[1]
        owner = Minio(host, access_key="guarded-key", secret_key="any-secret-1", secure=False)
        owner.make_bucket("kept")
        assert httpx.post(server.endpoint + "/moto-api/reset").status_code == 403
        assert httpx.get(server.endpoint + "/kept").status_code == 403  # unsigned
        stranger = Minio(host, access_key="someone-else", secret_key="any-secret-2",
                         secure=False)
        with pytest.raises(S3Error):
            stranger.list_buckets()
        assert owner.bucket_exists("kept")  # the reset did not happen
        assert server.refused - started == 3
        assert "moto's own API is not served" in caplog.text
    finally:
        server.stop()
    with pytest.raises(BadInput, match="never listens beyond loopback"):
        MotoS3Server(host="0.0.0.0")


def test_up_never_puts_moto_on_the_network(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home", PREFECT_SERVER_API_AUTH_STRING="admin:long-pass-1234")
    result = subprocess.run([*console_script(), "up", "--host", "0.0.0.0", "--store", "moto"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "moto" in result.stderr and "--host" in result.stderr
    assert not (tmp_path / "home" / "stack.json").exists()  # refused before anything started
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- 8 archive put


def test_workflow_documents_are_archived_only_by_their_flows(
    cli, archive: Archive, roster: None, make_pdf, tmp_path: Path
) -> None:
    fake = tmp_path / "fake.pdf"
    fake.write_bytes(make_pdf("伪造的已签批薪酬表"))
    for doc_type in ("PAS", "FOP", "CNF", "PAY"):
        forged = cli("archive", "put", str(fake), "--branch", "SZ01", "--type", doc_type,
                     "--subject", "已签批", user="cm1")
        assert forged.code == 3 and "only by their flow" in forged.err
    elsewhere = cli("archive", "put", str(fake), "--branch", "SZ01", "--type", "EXT",
                    "--subject", "扫描件", user="gzbm")
    assert elsewhere.code == 3
    assert cli("archive", "put", str(fake), "--branch", "SZ01", "--type", "EXT",
               "--subject", "客户签字扫描件", user="cm1").code == 0
    assert len(_refused(archive, "put")) == 5
    with new_session(archive.engine) as session:
        types = set(session.exec(select(SerialRecord.doc_type)).all())
    assert types == {"EXT"}  # no official number was spent on a refused type


# --------------------------------------------------------------------------- 9, 15 forms


def _rendered(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


def test_user_text_in_form_descriptions_renders_as_text_and_links_go_to_the_archive_page(
    archive: Archive,
) -> None:
    hostile = ("[请重新登录](http://evil.example/login) <img src=x onerror=alert(1)> "
               "www.evil.example ![x](http://evil.example/x.png)\n# 紧急 | a | b |")
    html = "".join([
        _rendered(describe_return(filing_id=1, revision=1, step_label="VP", opinion=hostile,
                                  submitter_id="bk1", last_refusal=hostile)),
        _rendered(describe_submission(branch="SZ01", kind="plan", subject=hostile,
                                      submitter="bk1")),
        _rendered(describe_waiting(
            title="t", subject=hostile, serial="SZ01-FIL-2026-000001",
            pdf_url=archive.document_link("SZ01-FIL-2026-000001"),
            waiting=Waiting(step=Step(name="vp", label="VP", roles=frozenset({"vp"})),
                            may_sign=("vp",)),
            decisions=[], names={}, last_refusal=hostile)),
    ])
    assert "evil.example" in html  # the text is shown ...
    assert "<img" not in html and 'href="http://evil' not in html  # ... but nothing is live
    assert "<h1" not in html and "<table" not in html
    links = re.findall(r'href="([^"]+)"', html)
    assert links == [f"{archive.settings.web_url}/documents/SZ01-FIL-2026-000001.pdf"]


# --------------------------------------------------------------------------- 10 flag


def test_flagging_a_client_is_scoped_to_the_trading_managers_branch(
    cli, archive: Archive, user, tmp_path: Path
) -> None:
    extra = tmp_path / "gz.csv"
    extra.write_text("user_id,name,roles,branch,team,supervisor_id,secret\n"
                     "gztm,交易部经理 GZ,trading_manager,GZ02,,,pw-gztm\n", encoding="utf-8")
    admin, registrar = user("admin1"), user("bk1")
    with new_session(archive.engine) as session:
        load_roster(session, path=extra, actor=admin)
        attribution = preregister(session, registrar=registrar, cm_id="cm1",
                                  client_name="张三", id_number=ID_NUMBER, asset_size="1000",
                                  hash_key=archive.settings.id_hash_key)
        make_effective(session, attribution=attribution, client_id="A100", actor_id="tm1")
        session.commit()
    other = cli("attribution", "flag-malicious", "A100", "--reason", "x", user="gztm")
    assert other.code == 3 and "SZ01" in other.err
    assert [e.target for e in _refused(archive, "flag-malicious")] == ["A100"]
    assert cli("attribution", "flag-malicious", "A100", "--reason", "冒名开户",
               user="tm1").code == 0
    (flagged,) = _audited(archive, "client-malicious")
    assert flagged["actor"] == "tm1"
    assert flagged["details"] == {"reason": "冒名开户", "branch": "SZ01"}


# --------------------------------------------------------------------------- 12 formulas


def test_exported_sheets_never_carry_a_live_formula(cli, tmp_path: Path) -> None:
    evil = '=HYPERLINK("http://evil.example","点此")'
    export = write_export(tmp_path / "crm", staff=[staff_row(evil), staff_row("cm2")],
                          clients=[client_row("C1", evil),
                                   client_row("C2", "cm2")])
    result = cli("payroll", "compute", "--month", MONTH, "--data", str(export), "--policy",
                 str(POLICY), "--format", "csv")
    assert result.code == 0, result.err
    cells = [line.split(",")[1] for line in result.out.splitlines()[1:]]
    assert any(c.startswith("\"'=HYPERLINK") or c.startswith("'=HYPERLINK") for c in cells)
    assert not any(c.startswith(("=", "\"=")) for c in cells)
    sheet_file = tmp_path / "pay.xlsx"
    assert cli("payroll", "compute", "--month", MONTH, "--data", str(export), "--policy",
               str(POLICY), "--format", "xlsx", "--out", str(sheet_file)).code == 0
    sheet = load_workbook(sheet_file).active
    assert sheet is not None
    kinds = {cell.data_type for row in sheet.iter_rows() for cell in row if cell.value}
    assert "f" not in kinds
    assert evil in [cell.value for row in sheet.iter_rows() for cell in row]  # kept as text


# --------------------------------------------------------------------------- 13 lockout


def test_five_wrong_secrets_lock_the_user_out_on_the_cli_and_the_form_path(
    cli, archive: Archive, roster: None
) -> None:
    for _ in range(5):
        assert cli("archive", "search", user="bm1", secret="guess").code == 3
    locked = cli("archive", "search", user="bm1")  # now the right secret
    assert locked.code == 3 and "locked out" in locked.err
    assert identify(archive.engine, user_id="bm1", secret="pw-bm1") is None
    assert cli("archive", "search", user="dm1").code == 0  # nobody else is locked
    channels = [e["details"]["channel"] for e in _audited(archive, "login-refused")]  # type: ignore[index]
    assert channels.count("cli") == 6 and channels.count("form") == 1


# --------------------------------------------------------------------------- 14 keys


def test_weak_keys_are_refused_with_exit_2(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    for weak in ("", "x", "a" * 40, "short-but-mixed-1"):
        monkeypatch.setenv("BROKERFLOW_SECRET_KEY", weak)
        refused = cli("archive", "search", user="bm1")
        assert refused.code == 2 and "BROKERFLOW_SECRET_KEY is too weak" in refused.err
    monkeypatch.setenv("BROKERFLOW_SECRET_KEY", "a-long-random-enough-cookie-key-0123456789")
    monkeypatch.setenv("BROKERFLOW_ID_HASH_KEY", "changethis")
    refused = cli("archive", "search", user="bm1")
    assert refused.code == 2 and "BROKERFLOW_ID_HASH_KEY still has the default" in refused.err


def test_an_older_env_file_gets_its_own_id_key_with_the_hashes_it_made(tmp_path: Path) -> None:
    from brokerflow.app.stack import ensure_env_file

    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    old_key = "the-key-that-hashed-the-ids-0123456789"
    (home / "brokerflow.env").write_text(f"BROKERFLOW_SECRET_KEY={old_key}\n")
    path = ensure_env_file(home)
    assert f"BROKERFLOW_ID_HASH_KEY={old_key}" in path.read_text().splitlines()
    assert home.stat().st_mode & 0o777 == 0o700  # tightened, never widened


# --------------------------------------------------------------------------- 18, 21 web


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def test_the_archive_page_holds_against_forged_posts_stolen_cookies_and_guessing(
    archive: Archive, roster: None
) -> None:
    with serving(archive) as base, httpx.Client(base_url=base) as browser:
        form = browser.get("/login")
        headers = form.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src" not in headers["content-security-policy"]  # default-src 'none'
        assert headers["x-frame-options"] == "DENY"
        forged = httpx.post(base + "/login", data={"user_id": "bm1", "secret": "pw-bm1"})
        assert forged.status_code == 403  # login CSRF: only our own form logs in
        answer = browser.post("/login", data={"user_id": "bm1", "secret": "pw-bm1",
                                              "csrf_token": _csrf(form)})
        assert answer.status_code == 303 and answer.headers["location"] == "/search"
        stolen = browser.cookies["brokerflow_session"]
        search = browser.get("/search")
        assert search.status_code == 200
        assert browser.get("/search", params={"serial": "SZ01\U0010ffff"}).status_code == 400
        assert browser.get("/search", params={"serial": "SZ\x00"}).status_code == 400
        assert browser.post("/logout", data={"csrf_token": "forged"}).status_code == 403
        assert browser.post("/logout", data={"csrf_token": _csrf(search)}).status_code == 303
        with httpx.Client(base_url=base, cookies={"brokerflow_session": stolen}) as thief:
            replay = thief.get("/search")
        assert replay.status_code == 303 and replay.headers["location"] == "/login"

        with httpx.Client(base_url=base) as guesser:  # one address, many users
            token = _csrf(guesser.get("/login"))
            for victim in ("cm1", "cm2", "cm3", "sm1", "sm2"):
                assert guesser.post("/login", data={"user_id": victim, "secret": "guess",
                                                    "csrf_token": token}).status_code == 401
            blocked = guesser.post("/login", data={"user_id": "dm1", "secret": "pw-dm1",
                                                   "csrf_token": token})
            assert blocked.status_code == 429
    assert len(_refused(archive, "log in")) == 1
    assert len(_refused(archive, "log out")) == 1
    assert len(_audited(archive, "login-refused")) == 6


# --------------------------------------------------------------------------- 16 files


def test_files_the_cli_writes_are_private(cli, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    export = write_export(tmp_path / "crm", staff=[staff_row("cm1")],
                          clients=[client_row("C1", "cm1")])
    assert cli("payroll", "compute", "--month", MONTH, "--data", str(export), "--policy",
               str(POLICY), "--format", "json", "--out", str(out)).code == 0
    assert out.stat().st_mode & 0o077 == 0  # umask 077: never readable by others


# --------------------------------------------------------------------------- 6 closing


def test_a_closing_starts_only_by_schedule_or_an_identified_closer_who_is_recorded(
    prefect_api: None, archive: Archive, user, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "crm", staff=[staff_row("cm1")],
                          clients=[client_row("c1", "cm1", assets="300000")])
    forged = ({}, {"data_dir": str(export)}, {"policy": str(POLICY)},
              {"attribution_source": "crm"}, {"ticket": "made-up"})
    for parameters in forged:  # what anyone with Prefect API access could ask for
        with pytest.raises(AccessDenied):
            monthly_closing(branch="SZ01", month=MONTH, wait="pause", poll_interval=0.1,
                            **parameters)
    refusals = [e for e in _audited(archive, "refused") if e["request"] == "payroll:SZ01:"
                + MONTH]
    assert len(refusals) == len(forged)
    with new_session(archive.engine) as session:
        assert session.exec(select(PayrollRun)).first() is None  # nothing computed

    accountant = user("ca1")
    upload_export(archive, directory=export, branch="SZ01", month=MONTH, actor=accountant)
    approve_pay_rules(archive.engine, branch="SZ01")
    with new_session(archive.engine) as session:
        ticket = issue_start_ticket(session, actor=accountant, branch="SZ01", month=MONTH)
        session.commit()
    with pytest.raises(AccessDenied):  # a ticket is for its branch and month only
        monthly_closing(branch="SZ01", month="2026-09", ticket=ticket, wait="pause")

    def latest() -> PayrollRun | None:
        with new_session(archive.engine) as session:
            return session.exec(select(PayrollRun)).first()

    chain = ChainDriver(lambda: monthly_closing(branch="SZ01", month=MONTH, ticket=ticket,
                                                wait="pause", poll_interval=0.1),
                        run_id=lambda: (run := latest()) and run.flow_run_id,
                        attempts=lambda: (run := latest()) and run.form_attempts or 0).start()
    chain.wait_paused()
    with new_session(archive.engine) as session:
        run = session.exec(select(PayrollRun)).one()
        pay = session.get(ArchiveEntry, run.pay_serial)
    assert run.started_by == "ca1" and pay is not None and pay.created_by == "ca1"
    computed = _audited(archive, "payroll-computed")
    assert [e["actor"] for e in computed] == ["ca1"]
    codes = _enrolled(archive, user("admin1"), "ca1", "dm1", "bm1")
    for signer in ("ca1", "dm1", "bm1"):  # outside development mode: one-time codes
        chain.sign(signer, secret=codes[signer].now())
    assert chain.join().startswith("SZ01-PAS-")


# --------------------------------------------------------------------------- 20 busy database


def test_a_long_writer_blocks_no_reader_and_a_waiting_writer_gets_a_clear_refusal(
    cli, env: dict[str, str], roster: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROKERFLOW_DATABASE_BUSY_MS", "1500")
    archive = open_archive(load_settings())  # an engine that waits 1.5 s for the lock
    database = env["BROKERFLOW_DATABASE_URL"].split("///", 1)[1]
    with serving(archive) as base, httpx.Client(base_url=base, timeout=30) as browser:
        form = browser.get("/login")
        assert browser.post("/login", data={"user_id": "bm1", "secret": "pw-bm1",
                                            "csrf_token": _csrf(form)}).status_code == 303
        writer = sqlite3.connect(database, timeout=5, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # a long writer holds the lock ...
        writer.execute("UPDATE user SET name = name WHERE user_id = 'cm1'")
        try:
            started = time.monotonic()
            assert browser.get("/login").status_code == 200  # ... readers go on
            assert browser.get("/").headers["location"] == "/search"  # the session is read
            assert time.monotonic() - started < 1.0
            other = httpx.Client(base_url=base, timeout=30)
            token = _csrf(other.get("/login"))
            busy = other.post("/login", data={"user_id": "dm1", "secret": "pw-dm1",
                                              "csrf_token": token})
            assert busy.status_code == 503 and "busy" in busy.text  # a writer waits, then
            cli_busy = cli("archive", "search", user="bm1")  # is told so, no traceback
            assert cli_busy.code == 7 and "database is busy" in cli_busy.err
            assert "Traceback" not in cli_busy.err
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        assert cli("archive", "search", user="bm1").code == 0


# --------------------------------------------------------------------------- 19 hostile cells

HOSTILE_CELLS = st.one_of(
    st.text(max_size=40),  # any unicode: controls, NUL, line separators, other scripts
    st.sampled_from(["1e30", "-1e30", "NaN", "sNaN", "Infinity", "-0", "²", "٣", "１００",
                     "0x10", "1_000", " 12 ", "=1+1", "9" * 400, "", "true", "2026-02-30"]),
    st.from_regex(r"-?[0-9]{1,20}(\.[0-9]{1,12})?", fullmatch=True),
)


@hypothesis.settings(max_examples=150, deadline=None, derandomize=True,
                     suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(
    in_staff=st.booleans(),
    column=st.integers(min_value=0, max_value=40),
    cell=HOSTILE_CELLS,
)
def test_any_hostile_cell_is_bad_input_naming_file_row_and_column_never_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_staff: bool, column: int, cell: str,
) -> None:
    from brokerflow.app.cli import main
    from brokerflow.app.sample.crm import CLIENT_COLUMNS, STAFF_COLUMNS

    staff, clients = staff_row("cm1"), client_row("c1", "cm1", assets="1000")
    row, columns = (staff, STAFF_COLUMNS) if in_staff else (clients, CLIENT_COLUMNS)
    name = columns[column % len(columns)]
    row[name] = cell
    export = write_export(tmp_path / f"crm-{abs(hash((in_staff, column, cell)))}",
                          staff=[staff], clients=[clients])
    capsys.readouterr()
    code = main(["payroll", "compute", "--month", MONTH, "--data", str(export),
                 "--policy", str(POLICY), "--format", "json"])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:  # the file, and the row of the hostile cell
        assert f"file {export}" in err and "row 2" in err, err


# --------------------------------------------------------------------------- 11 voids


def test_a_voided_number_survives_every_rebuild_and_is_never_handed_out_again(
    cli, archive: Archive, user, make_pdf
) -> None:
    clerk = user("cc1")
    first = archive.put(make_pdf("一"), DocumentSpec(branch="SZ01", doc_type="EXT",
                                                     subject="一", subject_key="k:1"),
                        actor=clerk).serial

    def broken(serial: str) -> bytes:
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):  # the top number is voided, nothing stored under it
        archive.archive_rendered(DocumentSpec(branch="SZ01", doc_type="EXT", subject="二",
                                              subject_key="k:2"), broken, actor=clerk)
    voided = first[:-6] + "000002"
    assert archive.store.stat(void_marker_key(voided)).metadata["status"] == "void"

    rebuilt = cli("archive", "rebuild-index", user="admin1")  # on the non-empty database
    assert rebuilt.code == 0 and "1 void number(s) kept" in rebuilt.out
    with new_session(archive.engine) as session:
        record = session.get(SerialRecord, voided)
        for table in (ArchiveEntry, SerialRecord, SerialCounter):  # and on a lost database
            for row in session.exec(select(table)):
                session.delete(row)
        session.commit()
    assert record is not None and record.status == "void" and "renderer crashed" in record.reason
    assert cli("archive", "rebuild-index", user="admin1").code == 0
    with new_session(archive.engine) as session:
        again = session.get(SerialRecord, voided)
    assert again is not None and again.status == "void" and "renderer crashed" in again.reason
    third = archive.put(make_pdf("三"), DocumentSpec(branch="SZ01", doc_type="EXT",
                                                    subject="三", subject_key="k:3"),
                        actor=clerk).serial
    assert third.endswith("000003")  # after the void, not in its place
    assert cli("archive", "verify", user="comp1").code == 0


# --------------------------------------------------------------------------- 7 audit chain


def _rewrite_opinion(archive: Archive, decision_id: int, opinion: str,
                     key: bytes | None) -> None:
    """What someone who can write the database does: change a decision and its audit row,
    then recompute every later link (with ``key``: an insider who also has the audit key)."""
    with new_session(archive.engine) as session:
        row = session.get(ApprovalDecision, decision_id)
        assert row is not None
        row.opinion = opinion
        session.add(row)
        prev = None
        for event in session.exec(select(AuditEvent).order_by(col(AuditEvent.id))):
            content = json.loads(event.content)
            if event.action == "decision" and content["details"]["decision_id"] == decision_id:
                content["details"]["opinion"] = opinion
                event.content = json.dumps(content, sort_keys=True, ensure_ascii=False,
                                           separators=(",", ":"))
            if prev is not None:
                event.prev_hash = prev
            event.hash = chain_hash(event.prev_hash, event.content, key=key)
            prev = event.hash
            session.add(event)
        head = session.get(AuditHead, 1)
        assert head is not None and prev is not None
        head.last_hash = prev
        session.add(head)
        session.commit()


def test_a_rewrite_of_the_database_alone_is_found_by_audit_verify(
    cli, archive: Archive, roster: None
) -> None:
    with new_session(archive.engine) as session:
        decisions = [record_decision(session, request_key="filing:1", revision=1, step=step,
                                     signer_id=signer, check=FormCheck(True, role=role),
                                     decision="approve", opinion="同意").id
                     for step, signer, role in (("office_receive", "bo1", "brokerage_office"),
                                                ("vp_instruction", "vp1", "vp"))]
        session.commit()
    first = cli("audit", "verify", user="comp1")
    assert first.code == 0 and "intact" in first.out and "checkpoint audit/" in first.out

    assert decisions[0] is not None and decisions[1] is not None
    _rewrite_opinion(archive, decisions[0], "不同意", key=None)  # the chain's old hashing
    plain = cli("audit", "verify", user="comp1")
    assert plain.code == 1 and "keyed hash" in plain.out

    test_key = os.environ["BROKERFLOW_AUDIT_KEY"].encode()
    _rewrite_opinion(archive, decisions[0], "不同意", key=test_key)  # even with the key
    keyed = cli("audit", "verify", user="comp1")
    assert keyed.code == 1 and "keyed hash" not in keyed.out
    assert "audit/checkpoints/" in keyed.out and "had hash" in keyed.out  # the anchor holds

    with new_session(archive.engine) as session:  # the decisions table alone
        row = session.get(ApprovalDecision, decisions[1])
        assert row is not None
        row.signer_id = "ch1"
        session.add(row)
        session.commit()
    swapped = cli("audit", "verify", user="comp1")
    assert swapped.code == 1 and f"decision {decisions[1]} differs" in swapped.out
    with new_session(archive.engine) as session:
        session.delete(session.get(ApprovalDecision, decisions[1]))
        session.commit()
    deleted = cli("audit", "verify", user="comp1")
    assert f"decision {decisions[1]} (audit row" in deleted.out and "missing" in deleted.out


# --------------------------------------------------------------------------- 5 dead runs


def test_a_filing_whose_run_died_is_handed_to_a_new_run_by_an_authorised_user(
    prefect_api: None, cli, archive: Archive, user
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Failed

    from brokerflow.approvals.filings import create_filing
    from brokerflow.approvals.signing import bind_flow_run
    from brokerflow.flows.filing import filing_chain
    from brokerflow.kernel.models import Filing

    deployment_id = filing_chain.to_deployment(name="filing-chain").apply()
    with new_session(archive.engine) as session:
        filing = create_filing(session, branch="SZ01", kind="marketing_plan",
                               subject="2027年度营销方案", body="预算另附", submitter=user("bk1"))
        session.commit()
    assert filing.id is not None
    with get_client(sync_client=True) as client:
        first = client.create_flow_run_from_deployment(deployment_id,
                                                       parameters={"filing_id": filing.id})
        bind_flow_run(archive.engine, Filing, filing.id, str(first.id))
        alive = cli("filing", "rebind", str(filing.id), "--reason", "x", user="bo1")
        assert alive.code == 2 and "still handled" in alive.err  # a live run is never replaced
        client.set_flow_run_state(first.id, Failed(message="worker lost"), force=True)
        assert cli("filing", "rebind", str(filing.id), "--reason", "x", user="cm1").code == 3
        assert cli("filing", "rebind", str(filing.id), "--reason", "x", user="gzbm").code == 3
        rebound = cli("filing", "rebind", str(filing.id), "--reason", "运行中断，重新接续",
                      "--no-wait", user="bo1")
        assert rebound.code == 0, rebound.err
        new_run = rebound.out.split()[-1]
        assert client.read_flow_run(UUID(new_run)).parameters == {"filing_id": filing.id}
    with new_session(archive.engine) as session:
        assert session.get(Filing, filing.id).flow_run_id == new_run  # type: ignore[union-attr]
    (audited,) = _audited(archive, "run-rebound")
    assert audited["actor"] == "bo1"
    assert audited["details"] == {"from": str(first.id), "reason": "运行中断，重新接续"}
    assert {e.user_id for e in _refused(archive, "rebind")} == {"cm1", "gzbm"}



# --------------------------------------------------------------------------- 3 one-time codes


def _enrolled(archive: Archive, admin: UserView, *user_ids: str) -> dict[str, pyotp.TOTP]:
    """Enrol ``user_ids`` as an admin would; each user's authenticator."""
    with new_session(archive.engine) as session:
        uris = {u: enrol(session, user_id=u, actor=admin, key=archive.settings.totp_key)
                for u in user_ids}
        session.commit()
    return {u: pyotp.parse_uri(uri) for u, uri in uris.items()}  # type: ignore[misc]


def test_outside_development_a_signature_needs_a_fresh_one_time_code(
    prefect_api: None, cli, archive: Archive, user
) -> None:
    from brokerflow.approvals.filings import create_filing
    from brokerflow.flows.filing import filing_chain

    enrolled = cli("roster", "totp", "bo1", user="bo1")  # a user enrols themself
    assert enrolled.code == 0 and "otpauth://totp/brokerflow:bo1?secret=" in enrolled.out
    assert "\u2588" in enrolled.out  # the QR code, drawn with block characters
    bo1 = pyotp.parse_uri(next(line for line in enrolled.out.splitlines()
                               if line.startswith("otpauth://")))
    assert cli("roster", "totp", "bo1", user="cm1").code == 3  # nobody else's
    with new_session(archive.engine) as session:
        seed = session.get(User, "bo1").totp_seed  # type: ignore[union-attr]
    assert seed and bo1.secret not in seed  # stored only encrypted

    with new_session(archive.engine) as session:
        filing = create_filing(session, branch="SZ01", kind="marketing_plan",
                               subject="2027年度营销方案", body="预算另附", submitter=user("bk1"))
        session.commit()
    attempts = lambda: (f := _filing_row(archive, filing.id)) and f.form_attempts or 0  # noqa: E731
    chain = ChainDriver(lambda: filing_chain(filing_id=filing.id, wait="pause",
                                             poll_interval=0.1),
                        run_id=lambda: (f := _filing_row(archive, filing.id)) and f.flow_run_id,
                        attempts=attempts).start()
    chain.wait_paused()
    chain.sign("bo1", secret="pw-bo1-typed-by-habit")  # a static secret only logs in
    code = bo1.now()
    chain.sign("bo1", secret=code, decision="reject")  # refused (no opinion): the code is spent
    chain.sign("bo1", secret=code)  # the same code again: refused as used
    with new_session(archive.engine) as session:
        assert session.exec(select(ApprovalDecision)).first() is None
    reasons = [e["details"]["reason"] for e in _audited(archive, "login-refused")]  # type: ignore[index]
    assert "wrong or expired one-time code" in reasons
    assert any("used already" in r for r in reasons)
    next_code = bo1.at(datetime.now(UTC) + timedelta(seconds=bo1.interval))  # the next step
    chain.sign("bo1", secret=next_code, opinion="转渠道管理部")
    with new_session(archive.engine) as session:
        counted = session.exec(select(ApprovalDecision)).all()
    assert [(d.signer_id, d.step) for d in counted] == [("bo1", "office_receive")]
    assert _filing_row(archive, filing.id).status != "rejected"  # type: ignore[union-attr]
    # nothing of the forms is left in Prefect's SQLite files (secure delete, WAL truncated)
    database = prefect_sqlite_file()
    assert database is not None
    for path in (database, Path(f"{database}-wal")):
        stored = path.read_bytes() if path.exists() else b""
        assert b"typed-by-habit" not in stored and code.encode() + b'"' not in stored, path


def _filing_row(archive: Archive, filing_id: int | None):  # type: ignore[no-untyped-def]
    from brokerflow.kernel.models import Filing

    with new_session(archive.engine) as session:
        return session.get(Filing, filing_id)
