"""Late uploads, duplicates and orphans: the archive accounts for every object that reaches the
bucket, whenever it arrives (docs/reliability.md)."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from brokerflow.archive import index
from brokerflow.archive.serials import parse_serial
from brokerflow.archive.service import Archive, DocumentSpec
from brokerflow.archive.store import ObjectStore, StoredObject
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import SerialRecord
from tests.support.services import MotoProcess


@pytest.fixture
def frozen_store(tmp_path: Path) -> Iterator[tuple[MotoProcess, ObjectStore]]:
    moto = MotoProcess(tmp_path / "moto.log")
    store = ObjectStore(endpoint_host=moto.endpoint.split("://")[1], access_key="k",
                        secret_key="s", bucket="late", retries=0, timeout_seconds=1.0,
                        retry_seconds=30)
    store.ensure_bucket(retention_years=1, retention_mode="GOVERNANCE")
    yield moto, store
    moto.stop()


def test_a_put_that_times_out_and_lands_late_is_stored_once(
    frozen_store: tuple[MotoProcess, ObjectStore],
) -> None:
    moto, store = frozen_store
    data = b"%PDF-1.4 late upload"
    results: list[StoredObject | BaseException] = []

    def put() -> None:
        try:
            results.append(store.put("SZ01/FOP/2026/SZ01-FOP-2026-000001.pdf", data,
                                     metadata={"serial": "SZ01-FOP-2026-000001"}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            results.append(exc)

    moto.freeze()  # the PUT is sent into a socket nobody reads: its outcome is unknown
    worker = threading.Thread(target=put)
    worker.start()
    time.sleep(4)  # the client gave up on it (1 s timeout) and has tried again
    moto.thaw()  # the queued PUT lands now, late
    worker.join(timeout=60)
    assert len(results) == 1 and isinstance(results[0], StoredObject), results
    versions = list(store.versions("SZ01/FOP/2026/"))
    assert len(versions) == 1  # the late one and the retry did not make two versions
    assert versions[0].etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert results[0].version_id == versions[0].version_id


def _spec(subject_key: str) -> DocumentSpec:
    return DocumentSpec(branch="SZ01", doc_type="FOP", subject="会签意见：2027年度营销方案",
                        subject_key=subject_key, revision=1)


def _render(renderer, spec: DocumentSpec):  # type: ignore[no-untyped-def]
    def render(serial: str) -> bytes:
        return renderer.render_pdf("FOP", {"branch": "SZ01", "subject": spec.subject,
                                           "serial": serial})
    return render


def test_verify_reports_a_late_duplicate_and_an_upload_under_a_voided_serial(
    archive: Archive, user, renderer,
) -> None:
    first = archive.archive_rendered(_spec("filing:1:opinions"),
                                     _render(renderer, _spec("filing:1:opinions")),
                                     actor=user("bo2"))
    key = parse_serial(first.serial).object_key
    stored = archive.store.get(key)
    # a client that does not make conditional writes uploads the same bytes a second time
    archive.store.client.put_object(
        archive.store.bucket, key, io.BytesIO(stored), len(stored),
        metadata={"x-amz-checksum-sha256": "", "x-amz-sdk-checksum-algorithm": "SHA256"})
    # a document whose first serial was voided (its upload timed out), stored again under
    # the next number -- then the first upload arrives after all
    spec = _spec("filing:2:opinions")
    reserved = archive.reserve(spec, actor=user("bo2"))
    assert not isinstance(reserved, str)
    with new_session(archive.engine) as session:
        index.void_serial(session, serial=str(reserved.serial), reason="store failed: timeout")
        session.commit()
    again = archive.archive_rendered(spec, _render(renderer, spec), actor=user("bo2"))
    assert again.serial != str(reserved.serial)
    late = _render(renderer, spec)(str(reserved.serial))
    archive.store.put(reserved.serial.object_key, late, metadata={
        "serial": str(reserved.serial), "type": "FOP", "subject": spec.subject,
        "sha256": hashlib.sha256(late).hexdigest(), "branch": "SZ01",
        "subject-key": spec.subject_key, "revision": "1", "cm": "", "team": "",
        "month": "2026-11", "created-by": "bo2", "created-at": "2026-11-24T10:00:00+08:00"})

    problems = archive.verify().problems
    assert any(p.startswith(f"{first.serial}: ") and "2 versions under one serial (1 more "
               "with the same bytes)" in p for p in problems), problems
    assert any(p.startswith(f"{reserved.serial.object_key}: object arrived after its serial "
                            "was voided") for p in problems), problems
    assert len(problems) == 2

    report = archive.rebuild_index()  # from the bucket alone: no crash on the orphan
    assert (report.indexed, report.voided_duplicates) == (2, 1)
    with new_session(archive.engine) as session:
        status = {r.serial: r.status for r in session.exec(select(SerialRecord))}
    assert status == {first.serial: "stored", str(reserved.serial): "void",
                      again.serial: "stored"}
    nxt = archive.archive_rendered(_spec("filing:3:opinions"),
                                   _render(renderer, _spec("filing:3:opinions")),
                                   actor=user("bo2"))
    assert parse_serial(nxt.serial).number == parse_serial(again.serial).number + 1
