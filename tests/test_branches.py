"""The branch registry (SPEC §10): an admin loads code → full name, address, phone from CSV or
XLSX (Chinese headers, GBK); bad rows exit 2 naming row and column, nothing written; anyone
else is refused (exit 3, logged); archived documents print the full name in their header."""

from __future__ import annotations

import json
from pathlib import Path

from openpyxl import Workbook
from sqlmodel import col, select

from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.flows.archive_document import archive_document
from brokerflow.kernel.branch_models import Branch
from brokerflow.kernel.branches import branch_name
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import AccessLogEntry, AuditEvent
from tests.support.pdf import pdf_text

CHINESE_HEADER = "营业部代码,营业部全称,地址,电话\n"
SZ01 = ("SZ01", "深圳福田证券营业部", "深圳市福田区深南大道1号", "0755-12345678")


def gbk_file(tmp_path: Path, body: str, name: str = "branches.csv") -> Path:
    path = tmp_path / name
    path.write_bytes((CHINESE_HEADER + body).encode("gbk"))
    return path


def listed(cli) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    result = cli("branch", "list", "--format", "json", user="bm1")
    assert result.code == 0, result.err
    rows: list[dict[str, str]] = json.loads(result.out)
    return rows


def test_an_admin_loads_a_gbk_file_with_chinese_headers_and_reloads_it(
    cli, roster: None, archive: Archive, tmp_path: Path
) -> None:
    path = gbk_file(tmp_path, ",".join(SZ01) + "\nGZ02,广州天河证券营业部,,\n")
    loaded = cli("branch", "load", str(path), user="admin1")
    assert loaded.code == 0, loaded.err
    assert "loaded 2 branches" in loaded.out and "2 new" in loaded.out
    assert listed(cli) == [
        {"code": "GZ02", "name": "广州天河证券营业部", "address": "", "phone": ""},
        dict(zip(("code", "name", "address", "phone"), SZ01, strict=True))]
    text = cli("branch", "list", user="bm1")
    assert text.code == 0 and "SZ01\t深圳福田证券营业部" in text.out

    # a later load updates a branch (XLSX, English headers) and is audited each time
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["code", "name"])
    sheet.append(["GZ02", "广州天河路证券营业部"])
    book.save(tmp_path / "update.xlsx")
    again = cli("branch", "load", str(tmp_path / "update.xlsx"), user="admin1")
    assert again.code == 0 and "1 changed" in again.out, again.err
    with new_session(archive.engine) as session:
        assert branch_name(session, "GZ02") == "广州天河路证券营业部"
        assert branch_name(session, "SZ01") == SZ01[1] and branch_name(session, "XX9") is None
        events = session.exec(select(AuditEvent).where(
            AuditEvent.action == "branches-loaded").order_by(col(AuditEvent.id))).all()
    assert [e.actor_id for e in events] == ["admin1", "admin1"]
    assert json.loads(events[1].content)["details"]["changed"] == ["GZ02"]


def test_only_an_admin_loads_branches_and_a_refusal_is_logged(
    cli, roster: None, archive: Archive, tmp_path: Path
) -> None:
    path = gbk_file(tmp_path, ",".join(SZ01) + "\n")
    denied = cli("branch", "load", str(path), user="bm1")
    assert denied.code == 3 and "admin" in denied.err and "Traceback" not in denied.err
    assert cli("branch", "load", str(path), user="admin1", secret="wrong").code == 3
    assert cli("branch", "load", str(path)).code == 2  # no acting user
    assert listed(cli) == []
    with new_session(archive.engine) as session:
        refusals = session.exec(select(AccessLogEntry).where(
            AccessLogEntry.action == "branch-load")).all()
    assert [(r.user_id, r.allowed) for r in refusals] == [("bm1", False)]


def test_bad_rows_exit_2_naming_each_row_and_column_and_write_nothing(
    cli, roster: None, tmp_path: Path
) -> None:
    path = gbk_file(tmp_path, "\n".join([
        "sz-01,深圳营业部,,",  # row 2: bad code
        "SH03,,上海,",  # row 3: no name
        ",".join(SZ01),  # row 4: fine
        "SZ01,又一个深圳营业部,,",  # row 5: the same code again
        "BJ04," + "北" * 65 + ",,",  # row 6: name too long
    ]) + "\n")
    result = cli("branch", "load", str(path), user="admin1")
    assert result.code == 2 and "Traceback" not in result.err
    assert f"file {path}, row 2, column code" in result.err and "sz-01" in result.err
    for where in ("row 3, column name", "row 5, column code", "row 6, column name"):
        assert where in result.err, (where, result.err)
    assert "already appears on row 4" in result.err
    assert listed(cli) == []

    header = tmp_path / "header.csv"
    header.write_text("营业部代码,地址\nSZ01,深圳\n", encoding="utf-8")
    missing = cli("branch", "load", str(header), user="admin1")
    assert missing.code == 2 and "row 1" in missing.err and "name (营业部全称)" in missing.err
    absent = cli("branch", "load", str(tmp_path / "none.csv"), user="admin1")
    assert absent.code == 2 and "no such file" in absent.err


def test_an_archived_document_prints_the_branch_name_address_and_phone(
    cli, roster: None, archive: Archive, user, tmp_path: Path
) -> None:
    assert cli("branch", "load", str(gbk_file(tmp_path, ",".join(SZ01) + "\n")),
               user="admin1").code == 0
    spec = DocumentSpec(branch="SZ01", doc_type="FIL", subject="2027年度人员招聘计划",
                        subject_key="branch-header-1")
    data = {"branch": "SZ01", "subject": "2027年度人员招聘计划",
            "body": {"kind": "人员招聘", "text": "拟招聘客户经理十名。"}}
    serial = archive_document.fn(archive, spec, data, actor=user("bk1"))
    _, pdf = archive.get(serial, actor=user("bm1"))
    text = pdf_text(pdf, tmp_path)
    assert "深圳福田证券营业部（SZ01）" in text
    assert "深圳市福田区深南大道1号" in text and "0755-12345678" in text

    # a branch the registry does not know prints its code, as before
    other = DocumentSpec(branch="GZ02", doc_type="FIL", subject="广州请示",
                         subject_key="branch-header-2")
    serial = archive_document.fn(archive, other, {"branch": "GZ02", "subject": "广州请示",
                                                  "body": {"text": "内容"}},
                                 actor=user("admin1"))
    _, pdf = archive.get(serial, actor=user("admin1"))
    text = pdf_text(pdf, tmp_path)
    assert "GZ02（GZ02）" in text and "地址" not in text
    with new_session(archive.engine) as session:
        assert session.get(Branch, "GZ02") is None


def test_documents_archived_together_print_the_branch_name(
    cli, roster: None, archive: Archive, user, tmp_path: Path
) -> None:
    from brokerflow.flows.confirmation_lists import archive_documents

    assert cli("branch", "load", str(gbk_file(tmp_path, ",".join(SZ01) + "\n")),
               user="admin1").code == 0
    specs = [DocumentSpec(branch="SZ01", doc_type="EXT", subject=f"外部文件{n}",
                          subject_key=f"branch-batch-{n}") for n in (1, 2)]
    documents = [{"branch": "SZ01", "subject": s.subject, "body": {"note": s.subject}}
                 for s in specs]
    serials = archive_documents.fn(archive, specs, documents, actor=user("bm1"))
    for serial in serials:
        _, pdf = archive.get(serial, actor=user("bm1"))
        assert "深圳福田证券营业部（SZ01）" in pdf_text(pdf, tmp_path)
