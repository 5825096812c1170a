"""Archiving as a Prefect flow, on the real Prefect test server."""

from __future__ import annotations

from pathlib import Path

from prefect.client.orchestration import get_client

from brokerflow.archive.service import Archive
from brokerflow.flows.archive_document import archive_document_flow
from tests.support.pdf import pdf_text


def test_flow_renders_archives_and_is_idempotent(
    prefect_api: None, archive: Archive, user, tmp_path: Path
) -> None:
    data = {"branch": "SZ01", "branch_name": "深圳福田营业部", "subject": "2027年度人员招聘计划",
            "body": {"kind": "人员招聘", "text": "拟招聘客户经理十名。"}}
    state = archive_document_flow(doc_type="FIL", data=data, subject_key="filing:7",
                                  actor_id="bk1", return_state=True)
    serial = state.result()
    assert serial.startswith("SZ01-FIL-") and serial.endswith("-000001")
    again = archive_document_flow(doc_type="FIL", data=data, subject_key="filing:7",
                                  actor_id="bk1")
    assert again == serial
    entry, pdf = archive.get(serial, actor=user("bm1"))
    text = pdf_text(pdf, tmp_path)
    assert serial in text and "2027年度人员招聘计划" in text and "拟招聘客户经理十名" in text
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.state is not None and run.state.is_completed()
