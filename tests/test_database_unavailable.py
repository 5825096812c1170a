"""A database that cannot be reached (closed port, wrong password, no such database): every
command names it (without its password), says how to fix it and exits 8 -- no traceback,
nothing written.  ``up`` checks both databases before it starts anything; the archive page
answers 503 and its log names the database."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlmodel import select

from brokerflow.app.s3server import free_port
from brokerflow.archive.service import Archive, open_archive
from brokerflow.kernel.db import describe_url, new_session
from brokerflow.kernel.errors import DatabaseUnavailable
from brokerflow.kernel.models import ArchiveEntry, User
from brokerflow.kernel.roster import load_roster
from brokerflow.kernel.settings import load_settings
from tests.support.paths import DATA, ROSTER_CSV, console_script
from tests.support.stack_process import clean_env
from tests.support.web import serving

PASSWORD = "not-this-Secret-9"


def _closed_port(_: str) -> tuple[str, str]:
    port = free_port()  # nothing listens there
    return (f"postgresql+psycopg://brokerflow:{PASSWORD}@127.0.0.1:{port}/brokerflow",
            "start PostgreSQL")


def _wrong_password(server: str) -> tuple[str, str]:
    url = make_url(server).set(password=PASSWORD)
    return url.render_as_string(hide_password=False), "check the user and password"


def _missing_database(server: str) -> tuple[str, str]:
    url = make_url(server).set(database="no_such_database")
    return url.render_as_string(hide_password=False), "create the database"


@pytest.mark.parametrize("broken", [_closed_port, _wrong_password, _missing_database],
                         ids=["closed-port", "wrong-password", "missing-database"])
def test_every_command_names_the_unreachable_database_and_writes_nothing(
    broken: Callable[[str], tuple[str, str]], postgres_url: str, archive: Archive,
    roster: None, cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_pdf,
) -> None:
    url, fix = broken(postgres_url)
    shown = describe_url(url)  # no password; a socket directory as it is written
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(make_pdf("扫描件"))
    monkeypatch.setenv("BROKERFLOW_DATABASE_URL", url)
    for argv, user in (
        (("roster", "load", str(DATA / "roster.csv")), None),
        (("archive", "put", str(scan), "--branch", "SZ01", "--type", "EXT",
          "--subject", "扫描件"), "cc1"),
        (("archive", "search"), "cc1"),
        (("archive", "verify"), "comp1"),
    ):
        result = cli(*argv, user=user)
        assert result.code == DatabaseUnavailable.exit_code == 8, (argv, result.err)
        assert f"cannot reach the database {shown}" in result.err, result.err
        assert fix in result.err and "BROKERFLOW_DATABASE_URL" in result.err
        assert PASSWORD not in result.err + result.out and "Traceback" not in result.err
    with new_session(archive.engine) as session:  # the real database: nothing arrived
        assert session.exec(select(ArchiveEntry)).all() == []
        assert len(session.exec(select(User)).all()) == len(
            (DATA / "roster.csv").read_text().splitlines()) - 1
    assert list(archive.store.versions()) == []


def test_up_names_the_database_it_cannot_reach_before_starting_anything(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    closed = f"postgresql+asyncpg://prefect:{PASSWORD}@127.0.0.1:{free_port()}/prefect"
    ports = ["--prefect-port", str(free_port()), "--web-port", str(free_port()),
             "--s3-port", str(free_port())]
    result = subprocess.run([*console_script(), "up", *ports],
                            env=clean_env(home, PREFECT_API_DATABASE_CONNECTION_URL=closed),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 8, result.stderr
    assert "cannot reach Prefect's database postgresql+asyncpg://prefect:***@127.0.0.1:" in (
        result.stderr) and "PREFECT_API_DATABASE_CONNECTION_URL" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert not (home / "stack.json").exists() and not (home / "prefect-server.log").exists()


def test_up_postgres_without_the_server_binaries_says_what_to_install(tmp_path: Path) -> None:
    result = subprocess.run(
        [*console_script(), "up", "--postgres", "--prefect-port", str(free_port()),
         "--web-port", str(free_port())],
        env=clean_env(tmp_path / "home", BROKERFLOW_POSTGRES_BIN=str(tmp_path / "none")),
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "install postgresql" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "postgres").exists()


def test_the_archive_page_says_the_database_is_gone_and_the_log_names_it(
    postgres_url: str, postgres_database: str, env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BROKERFLOW_DATABASE_URL", postgres_database)
    archive = open_archive(load_settings())
    with new_session(archive.engine) as session:
        load_roster(session, path=ROSTER_CSV, actor=None)
        session.commit()
    with serving(archive) as base, httpx.Client(base_url=base) as browser:
        form = browser.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        answer = browser.post("/login", data={"user_id": "bm1", "secret": "pw-bm1",
                                              "csrf_token": token.group(1)})
        assert answer.status_code == 303 and browser.get("/search").status_code == 200
        admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT",
                                         poolclass=sqlalchemy.NullPool)
        with admin.connect() as connection:  # the database goes away under the page
            connection.exec_driver_sql(
                f"DROP DATABASE {make_url(postgres_database).database} WITH (FORCE)")
        admin.dispose()
        gone = browser.get("/search")
    assert gone.status_code == 503 and "cannot be reached" in gone.text
    assert "Traceback" not in gone.text and make_url(postgres_database).host not in gone.text
    logged = capfd.readouterr().err
    assert f"cannot reach the database {describe_url(postgres_database)}" in logged
