"""``brokerflow up --postgres``: brokerflow's and Prefect's databases on a local PostgreSQL
cluster in the home, stopped with the stack and found again, data intact, on the next ``up``."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from brokerflow.app.postgres import LocalCluster, find_bindir
from brokerflow.kernel.errors import MissingPostgres
from tests.support.paths import ROSTER_CSV, console_script
from tests.support.services import ERROR_LINE
from tests.support.stack_process import clean_env, prefect_api, running_stack


@pytest.fixture
def home() -> Iterator[Path]:
    """A home the server's user (``postgres`` when we are root) can reach: pytest's own
    temporary directories are root's alone."""
    try:
        find_bindir()
    except MissingPostgres:
        pytest.skip("no PostgreSQL server installed (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="bf-up-"))
    base.chmod(0o711)
    try:
        yield base / "home"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _env_file(home: Path) -> dict[str, str]:
    lines = (home / "brokerflow.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = sqlalchemy.create_engine(make_url(url).set(drivername="postgresql+psycopg"),
                                      poolclass=sqlalchemy.NullPool)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql(sql)]


def _deployments(port: int, wanted: set[str]) -> set[str]:
    deadline, names = time.monotonic() + 120, set[str]()
    while time.monotonic() < deadline and not wanted <= names:
        names = {d["name"] for d in prefect_api(port, "/deployments/filter", {})}
        time.sleep(0.5)
    return names


@pytest.mark.slow
def test_up_postgres_puts_both_databases_on_a_local_cluster_that_keeps_them(
    home: Path,
) -> None:
    with running_stack(home, "--postgres") as stack:
        values = _env_file(home)
        password = values["BROKERFLOW_LOCAL_POSTGRES_PASSWORD"]
        assert values["BROKERFLOW_LOCAL_POSTGRES"] == "1"
        ours, prefects = (values["BROKERFLOW_DATABASE_URL"],
                          values["PREFECT_API_DATABASE_CONNECTION_URL"])
        assert ours.startswith("postgresql+psycopg://brokerflow:")
        assert prefects.startswith("postgresql+asyncpg://brokerflow:")
        assert "Database:     postgresql+psycopg://brokerflow:***@/brokerflow" in stack.output
        assert "Prefect DB:   postgresql+asyncpg://brokerflow:***@/prefect" in stack.output
        assert "(local PostgreSQL, data in" in stack.output and password not in stack.output
        assert (home / "postgres" / "data" / "PG_VERSION").is_file()
        # the cluster listens on no TCP port: its one socket is in a directory only its
        # user may enter, and even then it wants the generated password
        sockets = home / "postgres" / "run"
        assert stat.S_IMODE(sockets.stat().st_mode) == 0o700
        assert _rows(ours, "SHOW listen_addresses") == [("",)]
        expected_home_mode = 0o710 if os.geteuid() == 0 else 0o700  # postgres passes through
        assert stat.S_IMODE(home.stat().st_mode) == expected_home_mode
        loaded = subprocess.run([*console_script(), "roster", "load", str(ROSTER_CSV)],
                                env=clean_env(home), capture_output=True, text=True, timeout=120)
        assert loaded.returncode == 0, loaded.stderr
        users = len(ROSTER_CSV.read_text().splitlines()) - 1
        assert _rows(ours, 'SELECT count(*) FROM "user"') == [(users,)]  # brokerflow's: in PG
        wanted = {"filing-chain", "approval-reminders", "monthly-closing"}
        assert wanted <= _deployments(stack.prefect_port, wanted)
        prefect_api(stack.prefect_port, "/variables/", {"name": "bf_pg_probe", "value": "kept"})
        stored = {name for (name,) in _rows(prefects, "SELECT name FROM deployment")}
        assert wanted <= stored  # Prefect's: in PG too, and not in a SQLite file
        assert not (home / "prefect" / "prefect.db").exists()
        assert stack.interrupt() == 0
    assert not LocalCluster(home / "postgres").running()  # stopped with the stack
    server_log = (home / "prefect-server.log").read_text(errors="replace")
    assert [line for line in server_log.splitlines() if ERROR_LINE.search(line)] == []

    with running_stack(home) as stack:  # the home stays on PostgreSQL without the option
        assert "(local PostgreSQL, data in" in stack.output
        assert _env_file(home)["BROKERFLOW_LOCAL_POSTGRES_PASSWORD"] == password
        assert _rows(ours, 'SELECT count(*) FROM "user"') == [(users,)]
        kept = prefect_api(stack.prefect_port, "/variables/name/bf_pg_probe")
        assert kept["value"] == "kept"
        again = subprocess.run([*console_script(), "roster", "load", str(ROSTER_CSV)],
                               env=clean_env(home), capture_output=True, text=True, timeout=120)
        assert again.returncode == 2 and "--as" in again.stderr  # not empty: needs an admin
        assert stack.interrupt() == 0
    assert not LocalCluster(home / "postgres").running()


@pytest.mark.slow
def test_up_postgres_uses_databases_given_in_the_environment_and_starts_no_cluster(
    home: Path, postgres_url: str, postgres_database: str,
) -> None:
    prefect_database = make_url(postgres_database).set(
        database=make_url(postgres_database).database + "_prefect")
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT",
                                     poolclass=sqlalchemy.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {prefect_database.database}")
    prefects = prefect_database.set(drivername="postgresql+asyncpg").render_as_string(
        hide_password=False)
    try:
        with running_stack(home, "--postgres", BROKERFLOW_DATABASE_URL=postgres_database,
                           PREFECT_API_DATABASE_CONNECTION_URL=prefects) as stack:
            shown = make_url(postgres_database).render_as_string(hide_password=True)
            assert f"Database:     {shown} (PostgreSQL)" in stack.output
            assert "Prefect DB:   postgresql+asyncpg://" in stack.output
            assert not (home / "postgres").exists()  # no local cluster
            wanted = {"filing-chain"}
            assert wanted <= _deployments(stack.prefect_port, wanted)
            assert wanted <= {n for (n,) in _rows(prefects, "SELECT name FROM deployment")}
            assert _rows(postgres_database, "SELECT count(*) FROM alembic_version") == [(1,)]
            assert stack.interrupt() == 0
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(
                f"DROP DATABASE IF EXISTS {prefect_database.database} WITH (FORCE)")
        admin.dispose()
