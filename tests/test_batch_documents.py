"""Documents at volume (issue 12): many documents rendered together, each archived as its own
document -- own serial on the page, own checksum, own stored object -- as one at a time."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from brokerflow.app.s3server import free_port
from brokerflow.archive.layout import void_marker_key
from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.archive.store import ObjectStore
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput, StorageError
from brokerflow.kernel.identity import UserView
from brokerflow.kernel.models import SerialRecord
from brokerflow.kernel.render import DocumentRenderer
from tests.support.pdf import pdf_text

NAMES = ["王堃昇", "李秀英", "张伟", "刘芳", "陈静", "杨磊", "黄丽", "赵军", "吴洋", "周杰"]


def cml(cm_id: str, cm_name: str, clients: int, *, month: str = "2026-10",
        serial: str = "") -> dict[str, Any]:
    """CML data of ``clients`` clients (from 26 on the list needs a second page)."""
    return {
        "branch": "SZ01", "serial": serial, "subject": f"{month} 客户确认清单：{cm_name}",
        "body": {"cm_id": cm_id, "cm_name": cm_name, "month": month, "clients": [
            {"name": NAMES[i % len(NAMES)], "masked_id": f"**************{i:03d}X",
             "effective_at": f"{month}-{i % 28 + 1:02d} 10:{i % 60:02d}",
             "asset_size": f"{100000 + i * 1234.5:.2f}"} for i in range(clients)]},
    }


def pages(pdf: bytes, tmp_path: Path) -> int:
    path = tmp_path / "pages.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return int(next(line.split()[-1] for line in out.splitlines()
                    if line.startswith("Pages:")))


@pytest.mark.slow
def test_rendered_together_on_two_processes_each_pdf_is_the_one_render_pdf_makes(
    tmp_path: Path,
) -> None:
    renderer = DocumentRenderer()
    documents = [("CML", cml(f"cm{i}", f"客户经理{NAMES[i]}", 8 + 5 * i,
                             serial=f"SZ01-CML-2026-{i + 1:06d}")) for i in range(6)]
    documents.append(("PAY", {"branch": "SZ01", "serial": "SZ01-PAY-2026-000009",
                              "subject": "2026年10月客户经理薪酬", "body": {
                                  "month": "2026-10", "lines": [
                                      {"cm_id": "cm1", "name": "杨帆", "net_pay": "8000.00"}]}}))
    try:
        together = renderer.render_pdfs(documents, workers=2)  # 2 chunks: one to a worker
        assert renderer._pool is not None  # the worker process was used
    finally:
        renderer.close()
    assert len(together) == len(documents)
    for (doc_type, data), pdf in zip(documents, together, strict=True):
        assert pdf == renderer.render_pdf(doc_type, data)  # byte for byte
        text = pdf_text(pdf, tmp_path)
        assert data["serial"] in text  # its own serial, in the 表头 and the footer
        assert text.count(data["serial"]) >= 2
        assert "客户确认清单" in text or "薪酬" in text
    assert "王堃昇" in pdf_text(together[0], tmp_path)
    assert [pages(pdf, tmp_path) for pdf in together[:6]] == [1, 1, 1, 1, 2, 2]
    footer = pdf_text(together[5], tmp_path).replace(" ", "")
    assert "第1页/共2页" in footer and "第2页/共2页" in footer  # its own pages only


def test_a_document_that_fails_stands_as_its_error_the_others_render(
    renderer: DocumentRenderer, tmp_path: Path,
) -> None:
    documents: list[tuple[str, dict[str, Any]]] = [
        ("CML", cml("cm1", "杨帆", 3, serial="SZ01-CML-2026-000001")),
        ("CML", {"branch": "SZ01", "serial": "SZ01-CML-2026-000002"}),  # no subject
        ("CML", cml("cm2", "朱琳", 3, serial="SZ01-CML-2026-000003")),
    ]
    results = renderer.render_pdfs(documents, return_exceptions=True)
    assert isinstance(results[1], BadInput) and "subject" in str(results[1])
    for index in (0, 2):
        pdf = results[index]
        assert isinstance(pdf, bytes)
        assert f"SZ01-CML-2026-00000{index + 1}" in pdf_text(pdf, tmp_path)
    with pytest.raises(BadInput, match="subject"):
        renderer.render_pdfs(documents)
    assert renderer.render_pdfs([]) == []


def _specs(cms: list[str], *, month: str = "2026-10") -> list[DocumentSpec]:
    return [DocumentSpec(branch="SZ01", doc_type="CML", subject=f"{month} 客户确认清单：{cm}",
                         subject_key=f"cml:SZ01:{month}:{cm}:{n}", cm_id=cm, month=month,
                         source="test batch") for n, cm in enumerate(cms)]


def _render(renderer: DocumentRenderer, specs: list[DocumentSpec],
            datas: list[dict[str, Any]]) -> Callable[[list[tuple[int, str]]],
                                                       list[bytes | Exception]]:
    def render(jobs: list[tuple[int, str]]) -> list[bytes | Exception]:
        return renderer.render_pdfs(
            [(specs[i].doc_type, {**datas[i], "serial": serial}) for i, serial in jobs],
            return_exceptions=True)
    return render


def _statuses(archive: Archive) -> dict[str, str]:
    with new_session(archive.engine) as session:
        return {r.serial: r.status for r in session.exec(select(SerialRecord))}


def test_a_batch_archives_each_document_with_its_own_serial_checksum_and_object(
    archive: Archive, user: Callable[[str], UserView], renderer: DocumentRenderer,
    tmp_path: Path,
) -> None:
    specs = _specs(["cm1", "cm2", "cm3", "cm1", "cm2"])
    datas = [cml(s.cm_id or "", s.cm_id or "", 5 + n) for n, s in enumerate(specs)]
    results = archive.archive_rendered_batch(specs, _render(renderer, specs, datas),
                                             actor=user("tm1"), group=2)
    serials = [r.serial for r in results]
    assert serials == [f"SZ01-CML-{s[9:13]}-{n:06d}" for n, s in enumerate(serials, 1)]
    assert all(r.created for r in results)
    for spec, result in zip(specs, results, strict=True):
        entry, pdf = archive.get(result.serial, actor=user("bm1"))  # checksum re-verified
        assert hashlib.sha256(pdf).hexdigest() == result.sha256 == entry.sha256
        assert (entry.subject_key, entry.cm_id) == (spec.subject_key, spec.cm_id)
        text = pdf_text(pdf, tmp_path)
        assert result.serial in text and spec.subject in text
    assert len({r.sha256 for r in results}) == len(results)
    keys = [v.key for v in archive.store.versions() if v.key.endswith(".pdf")]
    assert sorted(keys) == sorted(f"SZ01/CML/{s[9:13]}/{s}.pdf" for s in serials)

    again = archive.archive_rendered_batch(specs, _render(renderer, specs, datas),
                                           actor=user("tm1"))
    assert [(r.serial, r.created, r.sha256) for r in again] == [
        (r.serial, False, r.sha256) for r in results]  # idempotent by subject
    assert len([v for v in archive.store.versions() if v.key.endswith(".pdf")]) == len(keys)


def test_a_failed_render_voids_only_its_serial(
    archive: Archive, user: Callable[[str], UserView], renderer: DocumentRenderer,
) -> None:
    specs = _specs(["cm1", "cm2", "cm3"])
    datas = [cml("cm1", "杨帆", 4), {"branch": "SZ01"}, cml("cm3", "尤佳", 4)]
    with pytest.raises(BadInput, match="subject"):
        archive.archive_rendered_batch(specs, _render(renderer, specs, datas),
                                       actor=user("tm1"))
    status = _statuses(archive)
    assert sorted(status.values()) == ["stored", "stored", "void"]
    void = next(serial for serial, s in status.items() if s == "void")
    assert void.endswith("000002")
    assert archive.store.get(void_marker_key(void))  # the void is in the bucket too

    datas[1] = cml("cm2", "朱琳", 4)  # mended: the others stay, the second gets a new number
    results = archive.archive_rendered_batch(specs, _render(renderer, specs, datas),
                                             actor=user("tm1"))
    assert [r.created for r in results] == [False, True, False]
    assert results[1].serial.endswith("000004")
    assert {results[0].serial, results[2].serial} == {
        s for s, v in status.items() if v == "stored"}


def test_a_store_failure_stops_the_batch_and_accounts_for_every_serial(
    archive: Archive, user: Callable[[str], UserView], renderer: DocumentRenderer,
) -> None:
    down = ObjectStore(endpoint_host=f"127.0.0.1:{free_port()}", access_key="k",
                       secret_key="s", bucket="down", retries=0, timeout_seconds=1.0,
                       retry_seconds=0.5)
    unreachable = Archive(engine=archive.engine, store=down, settings=archive.settings)
    specs = _specs(["cm1", "cm2", "cm3"])
    datas = [cml(s.cm_id or "", "客户经理", 3) for s in specs]
    with pytest.raises(StorageError):
        unreachable.archive_rendered_batch(specs, _render(renderer, specs, datas),
                                           actor=user("tm1"))
    assert sorted(_statuses(archive).values()) == ["void", "void", "void"]  # none dangling
