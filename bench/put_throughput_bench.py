"""Put throughput benchmark: archive documents into a local S3 endpoint (moto) + SQLite index.

Run: .venv/bin/python bench/put_throughput_bench.py [--puts 300] [--rendered 100]

Starts brokerflow.app.s3server.MotoS3Server on 127.0.0.1 (in a thread of this process), sets the
BROKERFLOW_* variables like tests/conftest.py (temp home, SQLite file, endpoint, keys, bucket,
secret key), opens the archive with open_archive(load_settings()), loads tests/data/roster.csv
and acts as counter clerk cc1 of branch SZ01.  Then:
  * Archive.put of N distinct pre-rendered EXT PDFs (one render, a unique trailing comment
    each), sequentially: documents/s, latency, and the time split between the S3 PUT and
    the rest (validation + serial allocation + index write, i.e. SQLite);
  * Archive.archive_rendered of M EXT documents (render with the serial on the page + store):
    documents/s and the split render / S3 / rest.
Not a test: prints figures only.  Bounded: ~1-2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import load_now, set_env  # noqa: E402  (bench/ is on sys.path when run)

from brokerflow.app.s3server import MotoS3Server  # noqa: E402
from brokerflow.archive.service import Archive, DocumentSpec, open_archive  # noqa: E402
from brokerflow.kernel.db import new_session  # noqa: E402
from brokerflow.kernel.identity import UserView  # noqa: E402
from brokerflow.kernel.render import DocumentRenderer  # noqa: E402
from brokerflow.kernel.roster import get_user_view, load_roster  # noqa: E402
from brokerflow.kernel.settings import load_settings  # noqa: E402

ROSTER_CSV = ROOT / "tests" / "data" / "roster.csv"
WARMUP = 5


class Timers:
    """Accumulated seconds per label, filled by wrapping bound methods of one object."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)

    def wrap(self, obj: Any, name: str, label: str) -> None:
        original = getattr(obj, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.total[label] += time.perf_counter() - t0

        setattr(obj, name, timed)  # instance attribute: shadows the method for self.<name>

    def reset(self) -> None:
        self.total.clear()


def ext_data(subject: str, serial: str = "") -> dict[str, Any]:
    return {"branch": "SZ01", "branch_name": "深圳福田营业部", "subject": subject,
            "serial": serial,
            "body": {"original_name": "合作协议扫描件.pdf", "archived_by": "褚燕",
                     "note": "外部文件归档：" + subject}}


def run_puts(archive: Archive, actor: UserView, base_pdf: bytes, start: int,
             count: int) -> list[float]:
    latencies = []
    for i in range(start, start + count):
        data = base_pdf + b"\n%" + str(i).encode()
        spec = DocumentSpec(branch="SZ01", doc_type="EXT", subject=f"外部文件 基准测试 {i}",
                            subject_key="", source="bench")
        t0 = time.perf_counter()
        result = archive.put(data, spec, actor=actor)
        latencies.append(time.perf_counter() - t0)
        assert result.created, result
    return latencies


def run_rendered(archive: Archive, actor: UserView, renderer: DocumentRenderer, start: int,
                 count: int) -> list[float]:
    latencies = []
    for i in range(start, start + count):
        subject = f"外部文件封面 基准测试 {i}"
        spec = DocumentSpec(branch="SZ01", doc_type="EXT", subject=subject,
                            subject_key=f"bench-rendered-{i}", source="bench")

        def render(serial: str, subject: str = subject) -> bytes:
            return renderer.render_pdf("EXT", ext_data(subject, serial))

        t0 = time.perf_counter()
        result = archive.archive_rendered(spec, render, actor=actor)
        latencies.append(time.perf_counter() - t0)
        assert result.created, result
    return latencies


def report(title: str, latencies: list[float], wall: float, timers: Timers,
           parts: list[tuple[str, str]]) -> None:
    ms = sorted(t * 1000 for t in latencies)
    n = len(ms)
    print(f"\n{title}: {n} documents in {wall:.2f} s = {n / wall:.1f} docs/s")
    print(f"  latency ms: mean {statistics.fmean(ms):.1f}  p50 {ms[n // 2]:.1f}  "
          f"p99 {ms[min(n - 1, round(0.99 * n) - 1)]:.1f}  max {ms[-1]:.1f}")
    accounted = 0.0
    for label, key in parts:
        seconds = timers.total[key]
        accounted += seconds
        print(f"  {label:44} {seconds * 1000 / n:7.1f} ms/doc  {100 * seconds / wall:5.1f} %")
    rest = wall - accounted
    print(f"  {'other (outside the timed steps)':44} "
          f"{rest * 1000 / n:7.1f} ms/doc  {100 * rest / wall:5.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=300)
    parser.add_argument("--rendered", type=int, default=100)
    args = parser.parse_args()

    bench_start = time.perf_counter()
    load_start = load_now()
    server = MotoS3Server()
    try:
        with tempfile.TemporaryDirectory(prefix="bf-put-bench-") as tmp_name:
            tmp = Path(tmp_name)
            set_env(tmp, server.endpoint)
            settings = load_settings()
            archive = open_archive(settings)
            with new_session(archive.engine) as session:
                load_roster(session, path=ROSTER_CSV, actor=None)
                session.commit()
                actor = get_user_view(session, "cc1")
            assert actor is not None
            print(f"S3 endpoint {server.endpoint} ({server.kind}, in-process thread), "
                  f"bucket {settings.s3_bucket}, DB {settings.database_url}")

            renderer = DocumentRenderer()
            base_pdf = renderer.render_pdf("EXT", ext_data("外部文件 基准测试"))
            print(f"pre-rendered EXT PDF: {len(base_pdf) / 1024:.1f} kB")

            timers = Timers()
            timers.wrap(archive.store, "put", "s3")
            timers.wrap(archive, "reserve", "reserve")
            timers.wrap(archive, "store_reserved", "store_reserved")

            run_puts(archive, actor, base_pdf, 0, WARMUP)
            timers.reset()
            t0 = time.perf_counter()
            latencies = run_puts(archive, actor, base_pdf, WARMUP, args.puts)
            wall = time.perf_counter() - t0
            s3 = timers.total["s3"]
            timers.total["index"] = timers.total["store_reserved"] - s3
            report(f"Archive.put, sequential, {len(base_pdf) // 1024} kB PDFs", latencies,
                   wall, timers, [
                       ("S3 PUT (ObjectStore.put, Content-MD5)", "s3"),
                       ("reserve: validate + allocate serial (DB)", "reserve"),
                       ("index row + access log commit (DB), SHA-256", "index"),
                   ])
            db = timers.total["reserve"] + timers.total["index"]
            print(f"  split: S3 {100 * s3 / wall:.0f} %, DB (reserve + index) "
                  f"{100 * db / wall:.0f} %, other {100 * (wall - s3 - db) / wall:.0f} %")

            renderer.render_pdf("EXT", ext_data("warm-up"))
            timers.wrap(renderer, "render_pdf", "render")
            run_rendered(archive, actor, renderer, 0, 2)
            timers.reset()
            t0 = time.perf_counter()
            latencies = run_rendered(archive, actor, renderer, 2, args.rendered)
            wall = time.perf_counter() - t0
            timers.total["index"] = timers.total["store_reserved"] - timers.total["s3"]
            report("Archive.archive_rendered (render EXT + store), sequential", latencies,
                   wall, timers, [
                       ("render (DocumentRenderer.render_pdf)", "render"),
                       ("S3 PUT (ObjectStore.put, Content-MD5)", "s3"),
                       ("reserve: validate + allocate serial (DB)", "reserve"),
                       ("index row + access log commit (DB), SHA-256", "index"),
                   ])
            archive.engine.dispose()
    finally:
        server.stop()
    print(f"\ntotal benchmark time {time.perf_counter() - bench_start:.0f} s; load average "
          f"at start {load_start}, at end {load_now()}")


if __name__ == "__main__":
    main()
