"""Index lookup benchmark: find an archive entry by serial among 1,000,000 rows (SQLite file).

Run: .venv/bin/python bench/index_lookup_bench.py [--rows 1000000] [--lookups 10000]
                                                  [--prefix-lookups 200] [--keep DIR]

Generates the rows with SQLAlchemy core bulk inserts (batches of 50k, a few transactions)
into a fresh SQLite file made by brokerflow.kernel.db.make_engine + migrate, then measures,
warm and in process, with a fresh Session per lookup (as archive.service does):
  * exact lookups through archive.index.search_entries(SearchFilter(serial=...));
  * exact lookups through session.get(ArchiveEntry, serial);
  * prefix searches (e.g. "SZ03-PAY-2025-0012", 100 matches each) through search_entries,
    and, as a reference outside the project's API, the same prefix as a key range.
Reports p50 / p99 / max in ms (goal: exact p99 < 10 ms), generation time, DB file size and
SQLite's query plans.  Not a test: prints figures only.  Bounded: ~1-2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import load_now  # noqa: E402  (bench/ is on sys.path when run)
from sqlalchemy import event, func, insert, select  # noqa: E402

from brokerflow.archive.index import SearchFilter, search_entries  # noqa: E402
from brokerflow.archive.serials import SERIAL_PATTERN, parse_serial  # noqa: E402
from brokerflow.kernel.db import make_engine, migrate, new_session  # noqa: E402
from brokerflow.kernel.models import ArchiveEntry  # noqa: E402
from brokerflow.kernel.vocabulary import DOCUMENT_TYPES  # noqa: E402

BRANCHES = [f"SZ{b:02d}" for b in range(1, 11)]  # 10 branches
TYPES = list(DOCUMENT_TYPES)  # 8 types
YEARS = list(range(2022, 2027))  # 5 years
BATCH = 50_000
BATCHES_PER_TRANSACTION = 5
SEED = 20260315


def serial_of(branch: str, doc_type: str, year: int, n: int) -> str:
    return f"{branch}-{doc_type}-{year}-{n:06d}"


def generate_rows(total: int) -> Iterator[dict[str, Any]]:
    """``total`` index rows in archive order: numbers grow per year, branches/types interleave."""
    groups = [(b, t, y) for y in YEARS for b in BRANCHES for t in TYPES]
    per_group = -(-total // len(groups))
    emitted = 0
    for year in YEARS:
        year_groups = [g for g in groups if g[2] == year]
        start = datetime(year, 1, 1, 1, 0, tzinfo=UTC)
        for n in range(1, per_group + 1):
            for branch, doc_type, _ in year_groups:
                if emitted == total:
                    return
                serial = serial_of(branch, doc_type, year, n)
                created = start + timedelta(seconds=n * (360 * 86_400 // per_group))
                cm = f"cm{n % 60 + 1:02d}" if doc_type in ("PAY", "CNF", "CML") else None
                yield {
                    "serial": serial, "branch": branch, "doc_type": doc_type, "year": year,
                    "number": n, "subject": f"{DOCUMENT_TYPES[doc_type]} 第{n}号 {branch}",
                    "subject_key": f"{doc_type}:{branch}:{year}:{n}", "revision": 1,
                    "cm_id": cm, "team": f"T{n % 4 + 1}" if cm else "",
                    "month": created.strftime("%Y-%m"),
                    "status": "current",
                    "sha256": hashlib.sha256(serial.encode()).hexdigest(),
                    "size": 30_000 + n % 20_000, "created_by": "cc1", "created_at": created,
                    "object_key": f"{branch}/{doc_type}/{year:04d}/{serial}.pdf",
                    "version_id": hashlib.md5(serial.encode(), usedforsecurity=False).hexdigest(),
                }
                emitted += 1


def populate(engine: Any, total: int) -> float:
    table = ArchiveEntry.__table__  # type: ignore[attr-defined]
    rows = generate_rows(total)
    t0 = time.perf_counter()
    done = 0
    while done < total:
        with engine.begin() as conn:  # BEGIN IMMEDIATE (brokerflow.kernel.db), one commit
            for _ in range(BATCHES_PER_TRANSACTION):
                batch = [row for _, row in zip(range(BATCH), rows, strict=False)]
                if not batch:
                    break
                conn.execute(insert(table), batch)
                done += len(batch)
        print(f"  {done:>9,} rows  {time.perf_counter() - t0:6.1f} s", flush=True)
    return time.perf_counter() - t0


def percentiles(times_s: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times_s)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, max(0, round(p / 100 * len(ms)) - 1))]

    return {"n": len(ms), "p50": pct(50), "p99": pct(99), "max": ms[-1],
            "mean": statistics.fmean(ms)}


def measure(fn: Callable[[str], int], keys: list[str], budget_s: float | None = None,
            ) -> tuple[dict[str, float], int]:
    times, found = [], 0
    start = time.perf_counter()
    for key in keys:
        t0 = time.perf_counter()
        found += fn(key)
        times.append(time.perf_counter() - t0)
        if budget_s is not None and time.perf_counter() - start > budget_s:
            break
    return percentiles(times), found


def query_plans(engine: Any, db_path: Path, exact: str, prefix: str) -> list[str]:
    """EXPLAIN QUERY PLAN of the SQL search_entries emits for an exact and a prefix serial."""
    captured: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        for text in (exact, prefix):
            with new_session(engine) as session:
                search_entries(session, query=SearchFilter(serial=text))
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    selects = [(s, p) for s, p in captured if s.lstrip().upper().startswith("SELECT")]
    lines = []
    raw = sqlite3.connect(db_path)
    try:
        for label, (statement, params) in zip(("exact", "prefix"), selects[-2:], strict=True):
            where = statement[statement.upper().index("WHERE"):].split("ORDER BY")[0]
            plan = raw.execute("EXPLAIN QUERY PLAN " + statement, params).fetchall()
            lines.append(f"{label}: {' '.join(where.split())}")
            lines.extend(f"    {row[-1]}" for row in plan)
    finally:
        raw.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--prefix-lookups", type=int, default=200)
    parser.add_argument("--prefix-budget-s", type=float, default=60.0,
                        help="stop prefix searches after this long (reports how many ran)")
    parser.add_argument("--keep", type=Path, help="create the DB in DIR and keep it")
    args = parser.parse_args()

    tmp = None
    if args.keep:
        workdir = args.keep
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bf-index-bench-")
        workdir = Path(tmp.name)
    db_path = workdir / "index.db"
    if db_path.exists():
        raise SystemExit(f"{db_path} exists; remove it or pick another --keep DIR")
    bench_start = time.perf_counter()
    load_start = load_now()
    try:
        engine = make_engine(f"sqlite:///{db_path}")
        migrate(engine)
        print(f"SQLite {sqlite3.sqlite_version}, DB {db_path}")
        print(f"generating {args.rows:,} rows ({len(BRANCHES)} branches x {len(TYPES)} types x "
              f"{len(YEARS)} years), batches of {BATCH:,}, "
              f"{BATCH * BATCHES_PER_TRANSACTION:,} rows per transaction")
        gen_s = populate(engine, args.rows)
        with engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(ArchiveEntry)).scalar_one()
        assert count == args.rows, count
        engine.dispose()  # no open connection: the checkpoint can move the whole WAL
        raw = sqlite3.connect(db_path)
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw.close()
        size_mb = db_path.stat().st_size / 1e6
        print(f"generated {count:,} rows in {gen_s:.1f} s ({count / gen_s:,.0f} rows/s); "
              f"DB file {size_mb:.0f} MB after WAL checkpoint")

        rng = random.Random(SEED)
        all_serials: list[str] = []
        with engine.connect() as conn:
            all_serials = list(conn.execute(select(ArchiveEntry.serial)).scalars())
        for s in rng.sample(all_serials, 100):
            assert SERIAL_PATTERN.match(s) and parse_serial(s), s
        keys = rng.sample(all_serials, args.lookups)
        warm = rng.sample(all_serials, 1000)
        per_group = -(-args.rows // (len(BRANCHES) * len(TYPES) * len(YEARS)))
        prefixes = [f"{rng.choice(BRANCHES)}-{rng.choice(TYPES)}-{rng.choice(YEARS)}-"
                    f"{rng.randrange(1, max(2, per_group // 100)):04d}"
                    for _ in range(args.prefix_lookups)]
        del all_serials

        def by_search(serial: str) -> int:
            with new_session(engine) as session:
                return len(search_entries(session, query=SearchFilter(serial=serial)))

        def by_get(serial: str) -> int:
            with new_session(engine) as session:
                return int(session.get(ArchiveEntry, serial) is not None)

        def by_range(prefix: str) -> int:
            """Reference only (not the project's API): the prefix as a range on the key."""
            statement = (select(ArchiveEntry)
                         .where(ArchiveEntry.serial >= prefix,  # type: ignore[operator]
                                ArchiveEntry.serial < prefix + "\uffff")  # type: ignore[operator]
                         .order_by(ArchiveEntry.serial).limit(1000))
            with new_session(engine) as session:
                return len(list(session.exec(statement)))

        measure(by_search, warm)
        measure(by_get, warm)
        results = {}
        results["exact, search_entries"], found_s = measure(by_search, keys)
        results["exact, session.get"], found_g = measure(by_get, keys)
        assert found_s == found_g == len(keys), (found_s, found_g)
        measure(by_search, prefixes[:3])
        results["prefix (~100 hits), search_entries"], hits = measure(
            by_search, prefixes, budget_s=args.prefix_budget_s)
        measure(by_range, prefixes[:3])
        results["reference: prefix as range on serial"], range_hits = measure(by_range, prefixes)

        print(f"\nlookups (fresh Session each, warm, {len(warm)} warm-up lookups first):")
        print(f"{'query':36} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean ms':>8}")
        for label, r in results.items():
            print(f"{label:36} {r['n']:6.0f} {r['p50']:8.3f} {r['p99']:8.3f} {r['max']:8.3f} "
                  f"{r['mean']:8.3f}")
        n_prefix = results["prefix (~100 hits), search_entries"]["n"]
        print(f"prefix searches returned {hits / n_prefix:.1f} rows on average (range "
              f"reference {range_hits / len(prefixes):.1f}), e.g. {prefixes[0]!r}")
        worst = max(results["exact, search_entries"]["p99"], results["exact, session.get"]["p99"])
        print(f"goal exact p99 < 10 ms: {'met' if worst < 10 else 'NOT met'} "
              f"(worst p99 {worst:.3f} ms)")
        print("\nquery plans:")
        for line in query_plans(engine, db_path, keys[0], prefixes[0]):
            print("  " + line)
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT * FROM archiveentry WHERE serial >= ? AND serial < ? "
                "ORDER BY serial LIMIT 1000", (prefixes[0], prefixes[0] + "\uffff")).fetchall()
        print("  reference range: WHERE serial >= ? AND serial < ?")
        print("\n".join(f"      {row[-1]}" for row in plan))
        engine.dispose()
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(f"\ntotal benchmark time {time.perf_counter() - bench_start:.0f} s; load average "
          f"at start {load_start}, at end {load_now()}")


if __name__ == "__main__":
    main()
