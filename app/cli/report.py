"""``brokerflow report``: the branch business reports (营业部业务月报, 半年度/年度业务报告;
seed 002 第六条, 第二十二条; SPEC §8.3) of closed months, read from the database."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from brokerflow.app.cli._common import AsUser, Format, print_json, signed_in, the_archive
from brokerflow.kernel.db import new_session
from brokerflow.kernel.identity import check_branch

app = typer.Typer(no_args_is_help=True)


@app.command("show", help="a month's business report, or a half year's / year's summed "
                          "from its closed months")
def show(branch: Annotated[str, typer.Option(help="the branch, e.g. SZ01")],
         period: Annotated[str, typer.Option(help="YYYY-MM, YYYYH1, YYYYH2 or YYYY")],
         output: Annotated[Format, typer.Option("--format")] = Format.text,
         as_user: AsUser = None) -> None:
    """SPEC §5: head office, the branch's management and its team leaders; anyone else is
    refused (exit 3, logged).  A month not closed: exit 4; in a half year or year it is
    named missing."""
    from brokerflow.payroll.business_report import parse_period, report_json, report_refusal
    from brokerflow.payroll.report_records import closed_month_report, period_report

    check_branch(branch)
    span = parse_period(period)
    archive = the_archive()
    actor = signed_in(archive, as_user)
    refusal = report_refusal(actor, branch=branch)
    if refusal is not None:
        raise archive.deny(actor, "show", f"business report {branch} {span.text}", refusal)
    with new_session(archive.engine) as session:
        report = (closed_month_report(session, branch=branch, month=span.text)
                  if span.kind == "month" else
                  period_report(session, branch=branch, period=span))
    data = report_json(report)
    if output == Format.json:
        print_json(data)
        return
    _print_text(data)


def _figure(value: Any) -> str:
    return "—" if value is None else str(value)


def _print_text(data: dict[str, Any]) -> None:
    monthly = data["kind"] == "month"
    print(f"{data['branch']} {data['period_label']} 营业部"
          f"{'业务月报' if monthly else '业务报告'}")
    for closing in data["closings"]:
        print(f"  {closing['month']}: PAY {closing['pay_serial'] or '-'}, PAS "
              f"{closing['pas_serial'] or '-'}, RPT {closing['rpt_serial'] or '-'}")
    if data["missing_months"]:
        print(f"  not closed (missing): {', '.join(data['missing_months'])}")
    print(f"{'team':<16}{'staff':>6}{'opened':>8}{'valid':>7}{'new value':>16}"
          f"{'net revenue':>15}{'last month':>15}{'change':>14}{'gross':>14}{'net pay':>14}")
    for row in [*data["teams"], data["total"]]:
        print(f"{row['team']:<16}{row['staff']:>6}{row['accounts_opened']:>8}"
              f"{row['valid_accounts']:>7}{row['new_value']:>16}{row['net_revenue']:>15}"
              f"{_figure(row['net_revenue_last']):>15}{_figure(row['net_revenue_change']):>14}"
              f"{row['gross']:>14}{row['net_pay']:>14}")
    payroll = data["payroll"]
    print(f"payroll: gross {payroll['gross']}, risk fund {payroll['risk_fund_withheld']}, "
          f"net {payroll['net_pay']}")
    for label, key in (("joined", "joins"), ("left", "leaves")):
        for change in data[key]:
            print(f"{label}: {change['cm_id']} {change['name']} ({change['team']}) "
                  f"{change['date']}")
    for change in data["level_changes"]:
        print(f"level change {change['month']}: {change['cm_id']} {change['name']} "
              f"{change['from_title'] or '-'} → {change['to_title']} {change['lvl_serial']}")
    for note in data["notes"]:
        print(note)
