"""What a test's database keeps, whichever database the tests run on (SQLite or PostgreSQL)."""

from __future__ import annotations

import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url

from brokerflow.app.postgres import find_bindir


def stored_bytes(database_url: str) -> bytes:
    """Every byte the database keeps: a SQLite file with its WAL and shared memory (the WAL
    checkpointed first), or a PostgreSQL database's full dump."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        try:
            with closing(sqlite3.connect(path, timeout=5)) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:  # a busy checkpoint: the WAL is read as it is
            pass
        return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))
    libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
    dump = subprocess.run([str(find_bindir() / "pg_dump"), "--dbname", libpq],
                          capture_output=True, check=True, timeout=120)
    return dump.stdout
