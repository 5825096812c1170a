"""Restart benchmark (issue 12): ``up`` on a home whose default directory store holds N
archived documents, and ``archive verify`` over them.

Fills the store through the archive's own put path (serial, SHA-256, object, index row per
document; the store's fsync off for the fill only), then times ``brokerflow up`` from start to
its "Press Ctrl-C" line with the full store and with an empty one, and ``brokerflow archive
verify`` (documents/s).

    .venv/bin/python bench/restart_bench.py --documents 100000
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from brokerflow.app.s3server import free_port

ROOT = Path(__file__).resolve().parent.parent


def bench_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BROKERFLOW_", "PREFECT_API_URL"))}
    env.update(BROKERFLOW_HOME=str(home), BROKERFLOW_DEV="1",
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def fill(home: Path, documents: int) -> float:
    """Archive ``documents`` small distinct PDFs as cc1 of SZ01; the rate (documents/s)."""
    os.environ.update(bench_env(home))
    from brokerflow.app.stack import ensure_roster
    from brokerflow.archive.directory_store import DirectoryStore
    from brokerflow.archive.service import Archive, DocumentSpec, open_archive
    from brokerflow.kernel.db import new_session
    from brokerflow.kernel.roster import get_user_view
    from brokerflow.kernel.settings import load_settings

    settings = load_settings()
    prepared = open_archive(settings)  # schema and store, as up prepares them
    # the same store without fsync: the fill is set-up, not what is measured (a synced put
    # costs ~4 ms per fsync on this disk, four per document; see docs/benchmarks.md)
    archive = Archive(engine=prepared.engine, settings=settings,
                      store=DirectoryStore(root=settings.store_path, bucket=settings.s3_bucket,
                                           sync=False))
    ensure_roster(archive.engine)
    with new_session(archive.engine) as session:
        actor = get_user_view(session, "cc1")
    assert actor is not None
    padding = b"x" * 2000  # about the size of a scanned cover sheet's text layer
    start = time.perf_counter()
    for n in range(documents):
        data = b"%PDF-1.4\n% brokerflow restart benchmark document " + str(n).encode() + padding
        archive.put(data, DocumentSpec(branch="SZ01", doc_type="EXT", subject=f"扫描件 {n}",
                                       subject_key=""), actor=actor)
        if n and n % 10000 == 0:
            rate = n / (time.perf_counter() - start)
            print(f"  {n} archived ({rate:.0f}/s)", flush=True)
    return documents / (time.perf_counter() - start)


def time_up(home: Path) -> float:
    """Seconds from starting ``brokerflow up`` to its "Press Ctrl-C" line; then stop it."""
    ports = [str(free_port()) for _ in range(3)]
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "brokerflow", "up", "--prefect-port", ports[0],
         "--s3-port", ports[1], "--web-port", ports[2]],
        env=bench_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if "Press Ctrl-C" in line:
            break
    elapsed = time.perf_counter() - start
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=120)
    if "Press Ctrl-C" not in "".join(output):
        raise SystemExit("up did not start:\n" + "".join(output))
    return elapsed


def time_verify(home: Path) -> tuple[float, str]:
    env = bench_env(home) | {"BROKERFLOW_SECRET": "pw-admin1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "brokerflow", "archive", "verify",
                           "--as", "admin1"], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    if done.returncode != 0:
        raise SystemExit(f"verify failed: {done.stdout}{done.stderr}")
    return elapsed, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="fill DIR/full once and keep it: later runs only time up and verify")
    args = parser.parse_args()
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; load {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bf-restart-") as tmp:
        empty, full = Path(tmp) / "empty", (args.keep or Path(tmp)) / "full"
        empty_starts = [time_up(empty) for _ in range(args.starts)]
        print(f"up, empty store: {', '.join(f'{t:.1f}' for t in empty_starts)} s")
        if not (full / "brokerflow.db").exists():
            rate = fill(full, args.documents)
            print(f"filled {args.documents} documents at {rate:.0f} documents/s")
        full_starts = [time_up(full) for _ in range(args.starts)]
        print(f"up, {args.documents} documents: {', '.join(f'{t:.1f}' for t in full_starts)} s "
              f"(goal < 10 s: {'met' if max(full_starts) < 10 else 'MISSED'})")
        seconds, last = time_verify(full)
        print(f"verify: {seconds:.1f} s, {args.documents / seconds:.0f} documents/s ({last})")
        print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
