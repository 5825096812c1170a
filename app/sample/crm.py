"""A deterministic sample CRM export (SPEC §6.2) for the demo: a few dozen CMs, three months."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

from brokerflow.kernel.calendar import Month
from brokerflow.payroll.inputs import CLIENT_COLUMNS, STAFF_COLUMNS, STAFF_OPTIONAL_COLUMNS


def write_sample_export(directory: Path, *, month: str, cms: int = 36, seed: int = 7) -> Path:
    """staff.csv and clients.csv for ``month`` and the two months before it."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    current = Month.parse(month)
    months = [str(current.minus(2)), str(current.minus(1)), str(current)]
    regional = "rm1"
    stationed = ["sm1", "sm2", "sm3"]
    people: list[tuple[str, str, str]] = [(regional, "regional", "")]
    people += [(s, "stationed", regional) for s in stationed]
    people += [(f"cm{i}", "cm", stationed[i % 3]) for i in range(1, cms - len(people) + 1)]
    surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
    given = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚"
    staff_rows, client_rows = [], []
    for index, (cm_id, position, supervisor) in enumerate(people):
        hire = f"{2019 + index % 7}-{1 + index % 12:02d}-01" if index % 9 else f"{month}-01"
        name = surnames[index % len(surnames)] + given[(index * 7) % len(given)]
        for m in months:
            absent = "1" if index % 17 == 5 and m == month else "0"
            staff_rows.append({
                "month": m, "cm_id": cm_id, "name": name, "position": position,
                "supervisor_id": supervisor, "site": f"网点{1 + index % 6}", "hire_date": hire,
                "qualified": "false" if index % 11 == 4 else "true",
                "late_count": str(rng.choice([0, 0, 0, 1, 2])),
                "personal_leave_days": rng.choice(["0", "0", "0.5", "1"]),
                "sick_leave_days": rng.choice(["0", "0", "0", "2", "4"]),
                "absent_half_days": absent, "no_event_count": "0",
                "meeting_missed_count": str(rng.choice([0, 0, 1])), "report_late_count": "0",
                "dress_count": "0", "off_post_count": "0", "complaint_count": "0",
                "fines": rng.choice(["0", "0", "0", "100"]),
                "mainly_ipo_or_fund": "true" if index % 13 == 3 else "false",
            })
        for k in range(rng.randint(5, 14)):
            client_id = f"{cm_id.upper()}-{k:03d}"
            opened_now = k < 3
            institution = k == 0 and index % 5 == 0
            for m in months:
                if opened_now and m != month:
                    continue
                assets = rng.randint(1_000, 3_000_000) * (20 if institution else 1)
                turnover = assets * rng.randint(0, 300) // 100
                client_rows.append({
                    "month": m, "client_id": client_id,
                    "client_type": "institution" if institution else "individual",
                    "cm_id": cm_id,
                    "open_date": f"{month}-{1 + k:02d}" if opened_now else "2024-03-01",
                    "attribution_effective": "false" if k == 4 else "true",
                    "malicious": "true" if k == 5 and index % 10 == 1 else "false",
                    "purchases": f"{rng.randint(0, 20_000)}.00",
                    "assets": f"{assets}.{rng.randint(0, 99):02d}",
                    "turnover": f"{turnover}.00",
                    "gross_commission": f"{turnover * 3 // 10_000}.{rng.randint(0, 99):02d}",
                    "fund_sales_commission": rng.choice(["0", "0", "120.50", "800.00"]),
                })
    return write_export(directory, staff=staff_rows, clients=client_rows)


def write_export(directory: Path, *, staff: list[dict[str, Any]],
                 clients: list[dict[str, Any]], state: dict[str, Any] | None = None) -> Path:
    """Write ``staff.csv``, ``clients.csv`` (SPEC §6.2 columns; the optional staff columns
    when a row has them) and, if given, ``state.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    optional = tuple(c for c in STAFF_OPTIONAL_COLUMNS if any(c in row for row in staff))
    for name, columns, rows in (("staff.csv", STAFF_COLUMNS + optional, staff),
                                ("clients.csv", CLIENT_COLUMNS, clients)):
        with (directory / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    if state is not None:
        (directory / "state.json").write_text(json.dumps(state), encoding="utf-8")
    return directory
