"""The command line of SPEC §6.1, group by group: every command and option is there, and bad
input, a wrong secret, a denied action and a missing thing exit 2, 3, 3 and 4."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROSTER_CSV, console_script

#: SPEC §6.1: command → the options it must take.
COMMANDS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("up",): ("--host", "--prefect-port", "--s3-port", "--web-port", "--store"),
    ("backup",): ("--as",),
    ("restore",): (),
    ("doctor",): ("--timeout",),
    ("demo",): ("--auto-approve", "--export"),
    ("serve",): ("--prefect-yaml",),
    ("deploy",): ("--prefect-yaml", "--pool", "--pool-limit"),
    ("worker",): ("--prefect-yaml", "--pool", "--deploy", "--name", "--poll-seconds", "--limit"),
    ("web",): ("--host", "--port"),
    ("render",): ("--data", "--out"),
    ("roster", "load"): ("--as",),
    ("roster", "disable"): ("--reason", "--left", "--as"),
    ("roster", "totp"): ("--as",),
    ("archive", "put"): ("--branch", "--type", "--subject", "--cm", "--month", "--as"),
    ("archive", "get"): ("--out", "--as"),
    ("archive", "search"): ("--serial", "--type", "--cm", "--month", "--status", "--format",
                            "--as"),
    ("archive", "verify"): ("--as",),
    ("archive", "rebuild-index"): ("--as",),
    ("audit", "verify"): ("--as",),
    ("filing", "submit"): ("--branch", "--kind", "--subject", "--body", "--file", "--no-start",
                           "--no-wait", "--timeout", "--as"),
    ("filing", "status"): ("--format", "--as"),
    ("filing", "list"): ("--branch", "--status", "--as"),
    ("filing", "sign"): ("--decision", "--opinion", "--departments", "--resubmit", "--withdraw",
                         "--subject", "--body", "--no-wait", "--timeout", "--code", "--as"),
    ("payroll", "compute"): ("--month", "--data", "--policy", "--format", "--out"),
    ("payroll", "close"): ("--branch", "--month", "--data", "--policy", "--no-wait",
                           "--timeout", "--as"),
    ("payroll", "status"): ("--branch", "--month", "--as"),
    ("payroll", "reopen"): ("--branch", "--month", "--reason", "--as"),
    ("attribution", "preregister"): ("--cm", "--client-name", "--id-number-file", "--asset-size",
                                     "--no-start", "--as"),
    ("attribution", "show"): ("--as",),
    ("attribution", "list"): ("--cm", "--month", "--status", "--format", "--as"),
    ("attribution", "flag-malicious"): ("--reason", "--as"),
    ("attribution", "rebind"): ("--reason", "--as"),
    ("attribution", "import"): ("--branch", "--kind", "--no-start", "--no-wait", "--timeout",
                                "--as"),
    ("attribution", "imports"): ("--branch", "--format", "--as"),
    ("attribution", "import-rebind"): ("--reason", "--as"),
    ("branch", "load"): ("--as",),
    ("branch", "list"): ("--format", "--as"),
    ("branch", "check"): ("--as",),
    ("templates",): ("--force",),
    ("filing", "rebind"): ("--reason", "--as"),
    ("level", "apply"): ("--cm", "--to", "--reason", "--branch", "--no-start", "--as"),
    ("level", "start"): ("--as",),
    ("level", "list"): ("--branch", "--status", "--format", "--as"),
    ("level", "rebind"): ("--reason", "--as"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
def test_every_command_takes_its_options(cli, command: tuple[str, ...]) -> None:
    helped = cli(*command, "--help")
    assert helped.code == 0, helped.err
    missing = [option for option in COMMANDS[command] if option not in helped.out]
    assert missing == [], helped.out


def test_usage_errors_exit_2_naming_what_is_wrong(cli) -> None:
    unknown = cli("archive", "fetch")
    assert unknown.code == 2 and "fetch" in unknown.err
    not_a_number = cli("filing", "status", "seven", user="bm1")
    assert not_a_number.code == 2 and "ID" in not_a_number.err
    bad_choice = cli("archive", "search", "--format", "yaml", user="bm1")
    assert bad_choice.code == 2 and "--format" in bad_choice.err
    no_option = cli("payroll", "compute", "--month", "2026-10")
    assert no_option.code == 2 and "--data" in no_option.err


def test_roster_and_render(cli, env: dict[str, str], tmp_path: Path) -> None:
    assert cli("roster", "load", str(tmp_path / "none.csv")).code == 2
    assert cli("roster", "load", str(ROSTER_CSV)).code == 0
    again = cli("roster", "load", str(ROSTER_CSV), user="bm1")  # not an admin
    assert again.code == 3 and "admin" in again.err
    (tmp_path / "d.json").write_text('{"branch": "SZ01"', encoding="utf-8")
    broken = cli("render", "FIL", "--data", str(tmp_path / "d.json"), "--out",
                 str(tmp_path / "o.pdf"))
    assert broken.code == 2 and "not valid JSON" in broken.err and "row 1" in broken.err
    unknown = cli("render", "ZZZ", "--data", str(tmp_path / "d.json"), "--out",
                  str(tmp_path / "o.pdf"))
    assert unknown.code == 2 and "TYPE" in unknown.err


def test_archive_and_audit_groups(cli, roster: None) -> None:
    assert cli("archive", "search").code == 2  # no acting user
    assert cli("archive", "search", user="bm1", secret="wrong").code == 3
    assert cli("archive", "get", "SZ01-FIL-2026-000099", user="bm1").code == 4
    assert cli("archive", "get", "not-a-serial", user="bm1").code == 2
    assert cli("archive", "verify", user="bm1").code == 3  # branch staff may not audit
    assert cli("archive", "verify", user="comp1").code == 0
    assert cli("audit", "verify", user="cm1").code == 3
    audited = cli("audit", "verify", user="comp1")
    assert audited.code == 0 and "intact" in audited.out


def test_filing_group(cli, roster: None) -> None:
    assert cli("filing", "status", "9", user="bm1").code == 4
    neither = cli("filing", "submit", "--branch", "SZ01", "--kind", "recruitment",
                  "--subject", "计划", "--no-start", user="bk1")
    assert neither.code == 2 and "--body" in neither.err
    made = cli("filing", "submit", "--branch", "SZ01", "--kind", "recruitment", "--subject",
               "计划", "--body", "……", "--no-start", user="bk1")
    assert made.code == 0 and made.out.startswith("filing 1 submitted")
    assert cli("filing", "sign", "1", "--decision", "maybe", user="bo1").code == 2
    assert cli("filing", "sign", "1", user="bo1", secret="wrong").code == 3
    listed = cli("filing", "list", user="bm1")
    assert listed.code == 0 and "计划" in listed.out


def test_payroll_group(cli, roster: None, tmp_path: Path) -> None:
    bad_month = cli("payroll", "compute", "--month", "2026/10", "--data", str(tmp_path))
    assert bad_month.code == 2 and "--month" in bad_month.err
    assert cli("payroll", "compute", "--month", "2026-10", "--data", str(tmp_path),
               "--format", "xlsx").code == 2  # xlsx needs --out
    denied = cli("payroll", "reopen", "--branch", "SZ01", "--month", "2026-10", "--reason",
                 "更正", user="dm1")
    assert denied.code == 3 and "branch manager" in denied.err
    not_closed = cli("payroll", "reopen", "--branch", "SZ01", "--month", "2026-10",
                     "--reason", "更正", user="bm1")
    assert not_closed.code == 2 and "is not closed" in not_closed.err
    assert cli("payroll", "close", "--branch", "SZ01", "--month", "2026-10",
               user="cm1").code == 3  # no closing role
    assert cli("payroll", "close", "--branch", "SZ01", "--month", "2026-10").code == 2  # no --as
    assert cli("payroll", "close", "--branch", "SZ01", "--month", "10/2026",
               user="ca1").code == 2


def test_attribution_group(cli, roster: None, tmp_path: Path) -> None:
    bad, good = tmp_path / "bad.id", tmp_path / "good.id"
    bad.write_text("123\n")
    good.write_text("11010519491231002X\n")
    assert cli("attribution", "preregister", "--cm", "cm1", "--client-name", "王五",
               "--id-number-file", str(bad), "--asset-size", "1", "--no-start",
               user="bk1").code == 2
    assert cli("attribution", "preregister", "--cm", "cm1", "--client-name", "王五",
               "--id-number-file", str(good), "--asset-size", "1", "--no-start",
               user="cm1").code == 3  # not back-office support
    assert cli("attribution", "preregister", "--cm", "cm1", "--client-name", "王五",
               "--id-number", "11010519491231002X", "--asset-size", "1", "--no-start",
               user="bk1").code == 2  # never on the command line
    assert cli("attribution", "preregister", "--cm", "cm1", "--client-name", "王五",
               "--id-number-file", str(tmp_path / "none.id"), "--asset-size", "1",
               "--no-start", user="bk1").code == 2
    assert cli("attribution", "flag-malicious", "A1", "--reason", "x", user="cm1").code == 3
    assert cli("attribution", "flag-malicious", "A1", "--reason", "x", user="tm1").code == 4
    assert cli("attribution", "list", "--month", "2026", user="bm1").code == 2
    assert cli("attribution", "show", "A1", user="bm1").code == 1  # nothing the user may see


def test_the_console_script_and_python_m_run_the_same_command_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERFLOW_")}
    for argv in (console_script(), [str(Path(console_script()[0]).parent / "python"), "-m",
                                    "brokerflow"]):
        done = subprocess.run([*argv, "payroll", "compute", "--month", "2026-13", "--data",
                               str(tmp_path)], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2 and "--month" in done.stderr and "Traceback" not in done.stderr


def test_the_command_line_starts_without_importing_prefect() -> None:
    """Prefect reads its settings when imported: imported before a command has found the
    local stack's API (``use_local_stack_api``) it talks to no server, and it makes its home
    directory.  Commands import it when they need it."""
    probe = subprocess.run([sys.executable, "-c", "import sys, brokerflow.app.cli; "
                            "print('prefect' in sys.modules)"],
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "False"
