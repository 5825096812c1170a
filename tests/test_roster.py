"""Loading the roster: validation with file/row/column, hashed secrets, admin-only reloads."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from brokerflow.archive.service import Archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import User, UserRole
from brokerflow.kernel.passwords import verify_secret
from tests.support.databases import stored_bytes
from tests.support.paths import ROSTER_CSV

HEADER = "user_id,name,roles,branch,team,supervisor_id,secret\n"


def write(tmp_path: Path, body: str, name: str = "roster.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_first_load_is_open_and_secrets_are_salted_hashes(cli, archive: Archive) -> None:
    result = cli("roster", "load", str(ROSTER_CSV))
    assert result.code == 0, result.err
    assert "loaded 24 users" in result.out
    with new_session(archive.engine) as session:
        users = {u.user_id: u for u in session.exec(select(User))}
        roles = {(r.user_id, r.role) for r in session.exec(select(UserRole))}
    assert users["cm1"].supervisor_id == "sm1" and users["cm1"].team == "T1"
    assert ("vp1", "vp") in roles and ("bm1", "branch_manager") in roles
    assert users["cm1"].secret_hash.startswith("scrypt$")
    assert "pw-cm1" not in users["cm1"].secret_hash
    assert users["cm1"].secret_hash != users["cm2"].secret_hash
    assert verify_secret("pw-cm1", users["cm1"].secret_hash)
    assert not verify_secret("pw-cm2", users["cm1"].secret_hash)
    assert b"pw-cm1" not in stored_bytes(archive.settings.database_url)


def test_later_loads_need_an_admin(cli, roster: None, tmp_path: Path) -> None:
    update = write(tmp_path, "cm9,新人,cm,SZ01,T1,sm1,pw-cm9\n")
    denied = cli("roster", "load", str(update), user="bm1")
    assert denied.code == 3 and "admin" in denied.err
    wrong = cli("roster", "load", str(update), user="admin1", secret="nope")
    assert wrong.code == 3
    ok = cli("roster", "load", str(update), user="admin1")
    assert ok.code == 0, ok.err
    # the existing supervisor sm1 (already in the database) is a valid reference
    assert cli("archive", "search", user="cm9").code == 0


def test_bad_rows_name_file_row_and_column_and_write_nothing(
    cli, archive: Archive, tmp_path: Path
) -> None:
    cases = {
        "unknown role": ("a1,甲,cm;wizard,SZ01,T1,,s\n", "row 2, column roles", "wizard"),
        "bad branch": ("a1,甲,cm,sz-1,T1,,s\n", "row 2, column branch", "sz-1"),
        "hq role in branch": ("a1,甲,vp,SZ01,,,s\n", "row 2, column roles", "head-office"),
        "missing supervisor": ("a1,甲,cm,SZ01,T1,nobody,s\n", "row 2, column supervisor_id",
                               "nobody"),
        "duplicate": ("a1,甲,cm,SZ01,T1,,s\na1,乙,cm,SZ01,T1,,s\n", "row 3, column user_id",
                      "row 2"),
        "cycle": ("a1,甲,cm,SZ01,T1,a2,s\na2,乙,stationed_manager,SZ01,T1,a1,s\n",
                  "column supervisor_id", "loops"),
        "no secret": ("a1,甲,cm,SZ01,T1,,\n", "row 2, column secret", "secret"),
        "short row": ("a1,甲,cm,SZ01\n", "row 2", "fields"),
    }
    for name, (body, where, what) in cases.items():
        path = write(tmp_path, body, f"{name.replace(' ', '_')}.csv")
        result = cli("roster", "load", str(path))
        assert result.code == 2, (name, result.err)
        assert str(path) in result.err and where in result.err and what in result.err, (
            name, result.err)
    bad_header = tmp_path / "header.csv"
    bad_header.write_text("user_id,name,roles\n", encoding="utf-8")
    result = cli("roster", "load", str(bad_header))
    assert result.code == 2 and "row 1" in result.err and "missing" in result.err
    missing = cli("roster", "load", str(tmp_path / "absent.csv"))
    assert missing.code == 2 and "no such file" in missing.err
    with new_session(archive.engine) as session:
        assert session.exec(select(User)).first() is None


def test_yaml_roster(cli, archive: Archive, tmp_path: Path) -> None:
    path = tmp_path / "roster.yaml"
    path.write_text(
        "users:\n"
        "  - {user_id: bm7, name: 经理, roles: [branch_manager], branch: SH07, secret: s1}\n"
        "  - {user_id: cm7, name: 客户经理, roles: cm, branch: SH07, team: A,"
        " supervisor_id: bm7, secret: s2}\n",
        encoding="utf-8",
    )
    result = cli("roster", "load", str(path))
    assert result.code == 0, result.err
    with new_session(archive.engine) as session:
        assert session.get(User, "cm7").supervisor_id == "bm7"  # type: ignore[union-attr]
