"""A local PostgreSQL cluster under the home, for ``brokerflow up --postgres`` (and the tests).

Debian's server binaries (``/usr/lib/postgresql/N/bin``, newest first; or the directory named
by ``BROKERFLOW_POSTGRES_BIN``; or ``pg_ctl`` on PATH) run a cluster in
``$BROKERFLOW_HOME/postgres``: ``data/`` (made by ``initdb`` on first start), ``run/`` (its
only socket: the cluster listens on no TCP port) and ``server.log``.  Every connection needs
the password generated on first start (kept in the home's env file); the socket directory is
the server user's alone.  The server refuses to run as root: as root it runs as the system
user ``postgres``, which may then pass through the home (group ``postgres``, mode 0710).

Two databases: ``brokerflow`` (``BROKERFLOW_DATABASE_URL``, psycopg) and ``prefect``
(``PREFECT_API_DATABASE_CONNECTION_URL``, asyncpg).  Either URL given in the environment is
used as it is; with both given no cluster is started.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from brokerflow.kernel.errors import BadInput, BrokerflowError, MissingPostgres

LOCAL_POSTGRES = "BROKERFLOW_LOCAL_POSTGRES"  # 1: up runs the local cluster (env or env file)
PASSWORD_KEY = "BROKERFLOW_LOCAL_POSTGRES_PASSWORD"  # the env file's generated password
PREFECT_DATABASE = "PREFECT_API_DATABASE_CONNECTION_URL"
BROKERFLOW_DATABASE = "BROKERFLOW_DATABASE_URL"
SERVER_USER = "postgres"  # the system user the server runs as when we are root
SUPERUSER = "brokerflow"
PORT = 5432  # names the socket file only
SOCKET_PATH_MAX = 107  # sun_path, less its terminating NUL
TRUE = ("1", "true", "yes", "on")


def find_bindir(version: str | None = None) -> Path:
    """The directory of PostgreSQL's server binaries (``initdb``, ``pg_ctl``); those of
    major ``version`` first (a cluster's data is that version's)."""
    given = os.environ.get("BROKERFLOW_POSTGRES_BIN")
    candidates = [Path(given)] if given else []
    if not given:
        if version:
            candidates.append(Path("/usr/lib/postgresql") / version / "bin")
        def newest(path: Path) -> tuple[int, ...]:
            return tuple(int(n) for n in re.findall(r"\d+", path.parent.parent.name))

        candidates += [p.parent for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                                                key=newest, reverse=True)]
        on_path = shutil.which("pg_ctl")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    where = f" in {given} (BROKERFLOW_POSTGRES_BIN)" if given else ""
    raise MissingPostgres(
        f"PostgreSQL's server binaries (initdb, pg_ctl){where} are not installed: install "
        "postgresql (apt-get install postgresql), or set BROKERFLOW_DATABASE_URL and "
        "PREFECT_API_DATABASE_CONNECTION_URL to PostgreSQL databases you run")


def _as_root() -> bool:
    return os.geteuid() == 0


def _server_ids() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError as exc:
        raise MissingPostgres(f"running as root, the PostgreSQL server needs the system user "
                              f"{SERVER_USER!r}, which the postgresql package creates: install "
                              "postgresql, or run brokerflow as a normal user") from exc
    return entry.pw_uid, entry.pw_gid


def _server_may_enter(path: Path) -> bool:
    """Whether the server's user can pass through ``path`` and every directory above it."""
    return subprocess.run(["runuser", "-u", SERVER_USER, "--", "test", "-x", str(path)],
                          capture_output=True).returncode == 0


@dataclass
class LocalCluster:
    """One PostgreSQL cluster in ``root`` (data, socket, log), reached through its socket."""

    root: Path
    bindir: Path = field(default_factory=find_bindir)
    durable: bool = True  # False (tests only): no fsync
    tcp_port: int | None = None  # tests only: also listen on 127.0.0.1 at this port

    @property
    def port(self) -> int:
        return self.tcp_port or PORT

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sockets(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """One server binary, as the server's user (``postgres`` when we are root)."""
        prefix = ["runuser", "-u", SERVER_USER, "--"] if _as_root() else []
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return subprocess.run([*prefix, str(self.bindir / args[0]), *args[1:]], env=env,
                              cwd="/", capture_output=True, text=True, timeout=timeout,
                              start_new_session=True)

    def _own_dir(self, path: Path) -> None:
        path.mkdir(mode=0o700, exist_ok=True)
        if _as_root():
            uid, gid = _server_ids()
            os.chown(path, uid, gid)

    def prepare(self) -> None:
        """Make ``root``, the server user's own.  As root the server runs as ``postgres``,
        which then may pass through root's parent (the home: group postgres, mode 0710;
        nobody else gains anything).  ``BadInput`` when the socket's path would be too long,
        or when ``postgres`` cannot pass through the directories above."""
        socket = self.sockets / f".s.PGSQL.{self.port}"
        if len(str(socket).encode()) > SOCKET_PATH_MAX:
            raise BadInput(f"the path of PostgreSQL's socket {socket} is longer than "
                           f"{SOCKET_PATH_MAX} bytes: choose a shorter BROKERFLOW_HOME")
        parent = self.root.parent
        if _as_root():
            _, gid = _server_ids()
            if not _server_may_enter(parent.parent):
                raise BadInput(f"the PostgreSQL server runs as user {SERVER_USER} (it refuses "
                               f"root) and cannot reach {parent}: let {SERVER_USER} pass "
                               f"through {parent.parent} and the directories above it (chmod "
                               "o+x), or choose another BROKERFLOW_HOME")
            os.chown(parent, -1, gid)
            parent.chmod(0o710)
        self._own_dir(self.root)

    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").is_file()

    def init(self, password: str) -> None:
        """``initdb``: superuser ``brokerflow`` with ``password``, which every connection,
        the socket's included, must give (scram-sha-256)."""
        self.prepare()
        pwfile = self.root / "initdb.password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(password + "\n")
        if _as_root():
            os.chown(pwfile, *_server_ids())
        try:
            done = self._run("initdb", "-D", str(self.data), "-U", SUPERUSER,
                             f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8",
                             "--no-locale", *([] if self.durable else ["--no-sync"]))
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise BrokerflowError(f"initdb failed for {self.data}: {done.stderr.strip()}")

    def running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.data)).returncode == 0

    def start(self, timeout: int = 60) -> None:
        """Start the server (if it is not running) and wait until it takes connections."""
        if self.running():
            return
        self.prepare()
        self._own_dir(self.sockets)
        listen = "127.0.0.1" if self.tcp_port else "''"
        options = (f"-c listen_addresses={listen} -k {shlex.quote(str(self.sockets))} "
                   f"-p {self.port} "
                   "-c unix_socket_permissions=0700")
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        done = self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w",
                         "-t", str(timeout), "-o", options, timeout=timeout + 30)
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace").splitlines()[-5:] if (
                self.log.exists()) else [done.stderr.strip()]
            raise BrokerflowError(f"PostgreSQL in {self.data} did not start (see {self.log}): "
                                  + " | ".join(tail))

    def stop(self) -> None:
        """Stop the server (fast: open transactions roll back), if it runs."""
        if self.initialized():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")

    def url(self, database: str, password: str, *, driver: str = "psycopg") -> str:
        """The SQLAlchemy URL of ``database`` through the socket (or TCP: ``tcp_port``)."""
        from sqlalchemy.engine import URL

        if self.tcp_port:
            return URL.create(f"postgresql+{driver}", username=SUPERUSER, password=password,
                              host="127.0.0.1", port=self.tcp_port, database=database
                              ).render_as_string(hide_password=False)
        return URL.create(f"postgresql+{driver}", username=SUPERUSER, password=password,
                          database=database,  # socket and port in the query: asyncpg's DSN
                          query={"host": str(self.sockets), "port": str(self.port)}
                          ).render_as_string(hide_password=False)

    def create_database(self, name: str, password: str) -> bool:
        """``CREATE DATABASE name`` unless it exists; whether it did."""
        import sqlalchemy

        from brokerflow.kernel.db import make_engine

        engine = make_engine(self.url("postgres", password)).execution_options(
            isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                found = connection.execute(
                    sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                    {"name": name}).first()
                if not found:
                    connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.engine.dispose()
        return not found


@dataclass
class Databases:
    """The databases a stack uses: Prefect's URL (None: its own SQLite under PREFECT_HOME) and
    the local cluster serving them, if any."""

    prefect_url: str | None
    cluster: LocalCluster | None = None
    notes: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()

    def describe(self, brokerflow_url: str, prefect_home: Path) -> list[str]:
        """What ``up`` prints about the databases (no passwords)."""
        from sqlalchemy.engine import make_url

        from brokerflow.kernel.db import describe_url

        def kind(url: str) -> str:
            if self.cluster is not None and url.startswith("postgresql") and (
                    make_url(url).query.get("host") == str(self.cluster.sockets)):
                return f"local PostgreSQL, data in {self.cluster.data}"
            return "PostgreSQL" if url.startswith("postgresql") else url.split(":", 1)[0]

        prefect = (f"{describe_url(self.prefect_url)} ({kind(self.prefect_url)})"
                   if self.prefect_url else f"SQLite in {prefect_home}")
        return [f"Database:     {describe_url(brokerflow_url)} ({kind(brokerflow_url)})",
                f"Prefect DB:   {prefect}", *self.notes]


def local_postgres_wanted(asked: bool, env_values: Mapping[str, str]) -> bool:
    """``--postgres``, else ``BROKERFLOW_LOCAL_POSTGRES`` (environment, then env file)."""
    setting = os.environ.get(LOCAL_POSTGRES, env_values.get(LOCAL_POSTGRES, ""))
    return asked or setting.strip().lower() in TRUE


def start_databases(home: Path, *, local: bool, env_values: Mapping[str, str],
                    remember: Callable[[str, str], None]) -> Databases:
    """Start the local cluster when ``local`` and a database URL is not given; write its URLs
    (and the setting) to the env file through ``remember`` once it serves them."""
    given_prefect = os.environ.get(PREFECT_DATABASE) or os.environ.get(
        "PREFECT_SERVER_DATABASE_CONNECTION_URL")
    if not local:
        return Databases(given_prefect)
    given_brokerflow = os.environ.get(BROKERFLOW_DATABASE)
    if given_brokerflow and given_prefect:
        remember(LOCAL_POSTGRES, "1")
        return Databases(given_prefect)
    version_file = home / "postgres" / "data" / "PG_VERSION"
    cluster = LocalCluster(home / "postgres", bindir=find_bindir(
        version_file.read_text().strip() if version_file.is_file() else None))
    password = env_values.get(PASSWORD_KEY)
    if cluster.initialized() and not password:
        raise BrokerflowError(f"the PostgreSQL cluster in {cluster.data} was made with a password "
                              f"{home / 'brokerflow.env'} no longer holds ({PASSWORD_KEY}): "
                              "restore that file, or move the cluster's directory away")
    cluster.prepare()
    if not cluster.initialized():
        password = password or secrets.token_urlsafe(24)
        remember(PASSWORD_KEY, password)  # before initdb: a cluster never has an unknown one
        cluster.init(password)
    assert password is not None
    cluster.start()
    try:
        made = [name for name, given in (("brokerflow", given_brokerflow),
                                         ("prefect", given_prefect))
                if not given and cluster.create_database(name, password)]
    except BaseException:
        cluster.stop()
        raise
    notes = []
    if "brokerflow" in made and (home / "brokerflow.db").exists():
        notes.append(f"              {home / 'brokerflow.db'} (SQLite) is not carried over: the "
                     "new database starts empty ('brokerflow backup' on SQLite, then "
                     "'brokerflow restore' moves its data)")
    remember(LOCAL_POSTGRES, "1")
    if not given_brokerflow:
        remember(BROKERFLOW_DATABASE, cluster.url("brokerflow", password))
    prefect_url = given_prefect or cluster.url("prefect", password, driver="asyncpg")
    if not given_prefect:
        remember(PREFECT_DATABASE, prefect_url)
    return Databases(prefect_url, cluster, notes)


def check_databases(brokerflow_url: str, prefect_url: str | None) -> None:
    """Connect once to each database, as brokerflow and Prefect's server will, before anything
    starts: ``DatabaseUnavailable`` naming the one that fails, and how to fix it."""
    from sqlalchemy.exc import OperationalError

    from brokerflow.kernel.db import database_unavailable, make_engine, unavailable

    engine = make_engine(brokerflow_url)
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        cause = unavailable(exc)
        if cause is None:
            raise
        raise cause from exc
    finally:
        engine.dispose()
    if not prefect_url or not prefect_url.startswith("postgresql"):
        return  # Prefect's own SQLite file
    from sqlalchemy.ext.asyncio import create_async_engine

    async def probe() -> None:
        engine = create_async_engine(prefect_url)
        try:
            async with engine.connect():
                pass
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception as exc:  # the driver's own errors, or the socket's
        raise database_unavailable(prefect_url, exc, setting=PREFECT_DATABASE,
                                   what="Prefect's database") from exc
