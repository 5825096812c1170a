"""``brokerflow policy``: a branch's pay-rules versions (SPEC §8.3, seed 002 第二条)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from brokerflow.app.cli._common import AsUser, Format, print_json, signed_in, the_archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput, NotFound

app = typer.Typer(no_args_is_help=True)


def _readable(archive: Any, actor: Any, branch: str) -> None:
    """Pay rules are read by the branch's own staff and by head office; others are denied."""
    if actor.branch not in (branch, "HQ"):
        raise archive.deny(actor, "read", f"pay rules of {branch}",
                           "pay rules are read by the branch's staff and head office")


def version_summary(rules: Any) -> dict[str, Any]:
    """One version as ``policy list`` shows it (the policy text itself is in ``show``)."""
    return {"version": rules.version, "status": rules.status,
            "effective_month": rules.effective_month, "filing_id": rules.filing_id,
            "filing_serial": rules.filing_serial, "approval_serial": rules.result_serial,
            "approved_at": rules.approved_at.isoformat() if rules.approved_at else None,
            "sha256": rules.sha256}


@app.command("list", help="every pay-rules version of a branch (pending and refused too)")
def listing(branch: Annotated[str, typer.Option()],
            output: Annotated[Format, typer.Option("--format")] = Format.text,
            as_user: AsUser = None) -> None:
    from brokerflow.payroll.pay_rules import pay_rules_versions

    archive = the_archive()
    actor = signed_in(archive, as_user)
    _readable(archive, actor, branch)
    with new_session(archive.engine) as session:
        rows = [version_summary(r) for r in pay_rules_versions(session, branch=branch)]
    if output == Format.json:
        print_json(rows)
        return
    if not rows:
        print(f"{branch} has no pay rules on file: 'brokerflow filing submit --kind pay_rules "
              "--policy FILE --effective-month YYYY-MM …'")
    for r in rows:
        version = f"v{r['version']}" if r["version"] else "-"
        print(f"{version:>4}  {r['status']:<9} from {r['effective_month']}  filing "
              f"{r['filing_id']} {r['filing_serial'] or '-'}  approved "
              f"{r['approval_serial'] or '-'}  sha256 {r['sha256'][:12]}")


@app.command("show", help="the policy TOML of a version (default: the one in force)")
def show(branch: Annotated[str, typer.Option()],
         version: Annotated[int | None, typer.Option(help="a version number")] = None,
         month: Annotated[str | None, typer.Option(
             help="YYYY-MM: the version in force that month")] = None,
         as_user: AsUser = None) -> None:
    from brokerflow.kernel.calendar import Month, utcnow
    from brokerflow.payroll.pay_rules import active_pay_rules, get_pay_rules

    if version is not None and month is not None:
        raise BadInput("give --version or --month, not both", column="--version")
    if month is not None:
        try:
            Month.parse(month)
        except ValueError:
            raise BadInput("month must be YYYY-MM", column="--month") from None
    archive = the_archive()
    actor = signed_in(archive, as_user)
    _readable(archive, actor, branch)
    with new_session(archive.engine) as session:
        if version is not None:
            rules = get_pay_rules(session, branch=branch, version=version)
        else:
            when = month or utcnow().strftime("%Y-%m")
            found = active_pay_rules(session, branch=branch, month=when)
            if found is None:
                raise NotFound(f"{branch} has no approved pay rules in force for {when}")
            rules = found
    print(f"# {branch} pay rules v{rules.version}, from {rules.effective_month}; filed as "
          f"{rules.filing_serial}, approved {rules.result_serial}; sha256 {rules.sha256}")
    sys.stdout.write(rules.policy if rules.policy.endswith("\n") else rules.policy + "\n")
