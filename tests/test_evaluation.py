"""Quarterly evaluation (SPEC §8.2): weights, redistribution, rounding once, flags, stars,
bad input (exit 2 naming file, row and column), JSON/CSV/XLSX output, forms; through the
command line and the pure functions."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from brokerflow.app.cli import main
from brokerflow.kernel.errors import BadInput
from brokerflow.payroll.evaluation import (
    CM_FORM,
    EVALUATION_COLUMNS,
    MANAGER_FORM,
    TEAM_FORM,
    WEIGHTS,
    EvaluationRow,
    QuarterEvaluation,
    _fast_evaluation,
    compute_evaluation,
    evaluation_from_directory,
    form_total,
    read_evaluations,
)
from brokerflow.payroll.evaluation_output import SHEET_COLUMNS, result_csv, result_json

Q = "2026Q3"
Row = tuple[str, str, str, str, str, str]  # evaluatee, role, team, evaluator, group, score

# file row 2 onwards
GOOD: list[Row] = [
    ("cm1", "cm", "T1", "cm2", "peer", "80"),  # 2
    ("cm1", "cm", "T1", "cm3", "peer", "90"),  # 3
    ("cm1", "cm", "T1", "rm1", "regional", "70"),  # 4
    ("cm1", "cm", "T1", "mk1", "marketing", "60"),  # 5
    ("rm1", "regional", "T1", "cm1", "sales", "70"),  # 6
    ("rm1", "regional", "T1", "cm2", "sales", "80"),  # 7
    ("rm1", "regional", "T1", "mk1", "marketing", "90"),  # 8
    ("rm1", "regional", "T1", "gm1", "gm", "50"),  # 9
    ("ra1", "regional_assistant", "T1", "cm1", "sales", "60"),  # 10
    ("ra1", "regional_assistant", "T1", "cm2", "sales", "70"),  # 11
    ("ra1", "regional_assistant", "T1", "cm3", "sales", "80"),  # 12
    ("ra1", "regional_assistant", "T1", "rm1", "regional", "90"),  # 13
    ("ra1", "regional_assistant", "T1", "mk1", "marketing", "40"),  # 14
    ("ra1", "regional_assistant", "T1", "gm1", "gm", "100"),  # 15
]
GOOD_JSON = {"quarter": Q, "results": [
    # (20 × 85 + 60 × 70 + 20 × 60) / 100 = 71
    {"evaluatee_id": "cm1", "role": "cm", "team": "T1", "total": "71.00",
     "groups": {"peer": "85.00", "regional": "70.00", "marketing": "60.00"},
     "flags": ["star"]},
    # (40 × 70 + 40 × 90 + 10 × 40 + 10 × 100) / 100 = 78
    {"evaluatee_id": "ra1", "role": "regional_assistant", "team": "T1", "total": "78.00",
     "groups": {"regional": "90.00", "marketing": "40.00", "sales": "70.00", "gm": "100.00"},
     "flags": []},
    # (80 × 75 + 10 × 90 + 10 × 50) / 100 = 74
    {"evaluatee_id": "rm1", "role": "regional", "team": "T1", "total": "74.00",
     "groups": {"marketing": "90.00", "sales": "75.00", "gm": "50.00"}, "flags": []},
]}


def write_rows(directory: Path, rows: Sequence[Sequence[str]], *, quarter: str = Q,
               header: Sequence[str] = EVALUATION_COLUMNS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "evaluations.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([quarter, *r] if len(r) == 6 else r for r in rows)
    return directory


def run(capsys: pytest.CaptureFixture[str], data: Path, *extra: str,
        quarter: str = Q) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["evaluation", "compute", "--quarter", quarter, "--data", str(data), *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def compute(rows: Sequence[Row]) -> dict[str, dict[str, Any]]:
    """Results by evaluatee, as JSON, from the pure function."""
    evaluation = compute_evaluation(
        (EvaluationRow(n, Q, e, role, team, by, g, Decimal(s))
         for n, (e, role, team, by, g, s) in enumerate(rows, start=2)), quarter=Q)
    return {r["evaluatee_id"]: r for r in result_json(evaluation)["results"]}


def cm(evaluatee: str, team: str, peer: Sequence[str] = (), regional: Sequence[str] = (),
       marketing: Sequence[str] = ()) -> list[Row]:
    return [(evaluatee, "cm", team, f"{g[0]}{n}", g, s)
            for g, scores in (("peer", peer), ("regional", regional), ("marketing", marketing))
            for n, s in enumerate(scores)]


# ------------------------------------------------------------------ the computation


def test_the_command_prints_the_weighted_totals_per_role(capsys, tmp_path: Path) -> None:
    code, out, err = run(capsys, write_rows(tmp_path / "d", GOOD))
    assert code == 0, err
    assert json.loads(out) == GOOD_JSON


def test_a_missing_group_gives_its_weight_to_the_others() -> None:
    results = compute([
        *cm("cm5", "T5", peer=["50"], regional=["80"]),  # (20 × 50 + 60 × 80) / 80 = 72.5
        ("ra5", "regional_assistant", "T5", "c1", "sales", "80"),  # (40 × 80 + 10 × 50) / 50
        ("ra5", "regional_assistant", "T5", "g1", "gm", "50"),
        ("rm5", "regional", "T5", "m1", "marketing", "30"),  # only marketing: 30
    ])
    assert results["cm5"]["total"] == "72.50"
    assert results["cm5"]["groups"] == {"peer": "50.00", "regional": "80.00"}
    assert results["cm5"]["flags"] == ["group_missing", "star"]
    assert results["ra5"]["total"] == "74.00"
    assert results["ra5"]["flags"] == ["group_missing"]
    assert results["rm5"]["total"] == "30.00"
    assert results["rm5"]["flags"] == ["below_60", "convert_to_cm", "group_missing"]


def test_below_60_and_only_a_regional_manager_converts_to_cm() -> None:
    results = compute([
        # (80 × 50 + 10 × 60 + 10 × 70) / 100 = 53
        ("rm6", "regional", "T6", "c1", "sales", "50"),
        ("rm6", "regional", "T6", "m1", "marketing", "60"),
        ("rm6", "regional", "T6", "g1", "gm", "70"),
        # (40 × 50 + 40 × 50 + 10 × 60 + 10 × 70) / 100 = 53
        ("ra6", "regional_assistant", "T6", "c1", "sales", "50"),
        ("ra6", "regional_assistant", "T6", "rm6", "regional", "50"),
        ("ra6", "regional_assistant", "T6", "m1", "marketing", "60"),
        ("ra6", "regional_assistant", "T6", "g1", "gm", "70"),
        *cm("cm6", "T6", peer=["50"], regional=["50"], marketing=["50"]),
        # 59.99 everywhere: below 60
        ("rm7", "regional", "T7", "c1", "sales", "59.99"),
        ("rm7", "regional", "T7", "m1", "marketing", "59.99"),
        ("rm7", "regional", "T7", "g1", "gm", "59.99"),
        # peers mean 59.975: (20 × 59.975 + 60 × 60 + 20 × 60) / 100 = 59.995 -> 60.00
        *cm("cm7", "T7", peer=["59.95", "60.00"], regional=["60"], marketing=["60"]),
    ])
    assert (results["rm6"]["total"], results["rm6"]["flags"]) == (
        "53.00", ["below_60", "convert_to_cm"])
    assert (results["ra6"]["total"], results["ra6"]["flags"]) == ("53.00", ["below_60"])
    assert (results["cm6"]["total"], results["cm6"]["flags"]) == ("50.00", ["below_60"])
    assert (results["rm7"]["total"], results["rm7"]["flags"]) == (
        "59.99", ["below_60", "convert_to_cm"])
    # the flags use the rounded total: 59.995 rounds to 60.00, which is not below 60
    assert (results["cm7"]["total"], results["cm7"]["flags"]) == ("60.00", ["star"])
    assert results["cm7"]["groups"]["peer"] == "59.98"


def test_rounding_is_half_up_and_once() -> None:
    results = compute([
        # regional mean 210.02 / 3 = 70.00666…: (20 × 70 + 60 × 70.00666… + 20 × 70) / 100
        # = 70.004 -> 70.00; rounding the mean first (70.01) would give 70.006 -> 70.01
        *cm("cmA", "TA", peer=["70"], regional=["70", "70.01", "70.01"], marketing=["70"]),
        # peers mean 70.025 -> 70.03 (half-up); total (20 × 70.025 + 5600) / 100 = 70.005
        # -> 70.01 (half-up; half-even would give 70.02 and 70.00)
        *cm("cmB", "TB", peer=["70.02", "70.03"], regional=["70"], marketing=["70"]),
    ])
    assert results["cmA"]["total"] == "70.00"
    assert results["cmA"]["groups"] == {"peer": "70.00", "regional": "70.01",
                                        "marketing": "70.00"}
    assert results["cmB"]["total"] == "70.01"
    assert results["cmB"]["groups"]["peer"] == "70.03"


def test_star_per_team_tie_to_the_lowest_id_in_code_point_order() -> None:
    results = compute([
        *cm("cm9", "S", peer=["80"], regional=["80"], marketing=["80"]),
        *cm("cm10", "S", peer=["80"], regional=["80"], marketing=["80"]),  # "cm10" < "cm9"
        *cm("cm2", "S", peer=["79"], regional=["80"], marketing=["80"]),  # 79.80
        ("rmS", "regional", "S", "c1", "sales", "95"),  # managers never get a star
        ("raS", "regional_assistant", "S", "c1", "sales", "99"),
        *cm("B1", "U", peer=["70"], regional=["70"]),  # group_missing does not exclude
        *cm("a1", "U", peer=["70"], regional=["70"], marketing=["70"]),  # "B1" < "a1"
        *cm("low", "V", peer=["59"], regional=["59"], marketing=["59"]),  # nobody in V
        ("rmV", "regional", "V", "c1", "sales", "90"),
    ])
    stars = sorted(e for e, r in results.items() if "star" in r["flags"])
    assert stars == ["B1", "cm10"]
    assert results["cm9"]["flags"] == [] and results["rmS"]["flags"] == ["group_missing"]
    assert results["low"]["flags"] == ["below_60"]


def test_only_evaluatees_with_rows_appear_sorted_by_code_point(capsys, tmp_path: Path) -> None:
    rows = [("b", "cm", "T", "Z", "peer", "70"), ("Z", "cm", "T", "b", "peer", "75"),
            ("a", "cm", "T", "x9", "regional", "65")]  # x9 only evaluates
    code, out, _ = run(capsys, write_rows(tmp_path / "d", rows))
    assert code == 0
    assert [r["evaluatee_id"] for r in json.loads(out)["results"]] == ["Z", "a", "b"]


def test_cells_are_trimmed_like_the_payroll_files(capsys, tmp_path: Path) -> None:
    rows = [[f" {v} " if n in (1, 3, 4, 6) else v for n, v in enumerate([Q, *r])]
            for r in GOOD]
    code, out, err = run(capsys, write_rows(tmp_path / "d", rows))
    assert code == 0, err
    assert json.loads(out) == GOOD_JSON


# ------------------------------------------------------------------ bad input


def edited(rows: list[Row], row: int, column: str, value: str) -> list[list[str]]:
    table = [[Q, *r] for r in rows]
    table[row - 2][EVALUATION_COLUMNS.index(column)] = value
    return table


@pytest.mark.parametrize(("row", "column", "value", "message"), [
    (2, "evaluatee_role", "boss", "unknown role 'boss'"),
    (3, "evaluatee_role", "CM", "unknown role 'CM'"),
    (2, "group", "sales", "does not evaluate a cm"),
    (6, "group", "peer", "does not evaluate a regional"),
    (13, "group", "friends", "unknown group"),
    (3, "evaluator_id", "cm1", "self evaluation"),
    (3, "evaluator_id", "cm2", "duplicate: cm2 already evaluated cm1 as peer"),
    (12, "evaluator_id", "cm2", "duplicate"),
    (4, "score", "85.555", "not a score"),
    (4, "score", "abc", "not a score"),
    (4, "score", "1e2", "not a score"),
    (4, "score", "-5", "not a score"),
    (4, "score", "+85", "not a score"),
    (4, "score", ".5", "not a score"),
    (4, "score", "85.", "not a score"),
    (4, "score", "101", "not a score"),
    (4, "score", "100.01", "not a score"),
    (4, "score", "1000", "not a score"),
    (4, "score", "NaN", "not a score"),
    (4, "score", "٨٥", "not a score"),  # digits, but not ASCII digits
    (4, "score", "", "is empty"),
    (7, "evaluatee_role", "regional_assistant", "a regional on their first row"),
    (3, "team", "T2", "in team T2 here but in team T1"),
    (5, "quarter", "2026Q2", "quarter 2026Q2 is not the quarter computed (2026Q3)"),
    (5, "quarter", "2026-Q3", "not a quarter"),
    (5, "quarter", "2026q3", "not a quarter"),
    (2, "evaluatee_id", "cm\x01", "control character"),
    (2, "evaluatee_id", "", "is empty"),
    (2, "team", "", "is empty"),
    (2, "evaluator_id", "x" * 65, "longer than 64"),
])
def test_bad_rows_exit_2_naming_file_row_and_column(capsys, tmp_path: Path, row: int,
                                                    column: str, value: str,
                                                    message: str) -> None:
    data = write_rows(tmp_path / "d", edited(GOOD, row, column, value))
    out_file = tmp_path / "out.json"
    code, out, err = run(capsys, data, "--out", str(out_file))
    assert code == 2, err
    assert err.startswith(f"brokerflow: file {data / 'evaluations.csv'}, row {row}, "
                          f"column {column}: ")
    assert message in err
    assert out == "" and not out_file.exists()


def test_the_first_offending_row_in_file_order_is_reported(capsys, tmp_path: Path) -> None:
    # row 3 repeats row 2 (a duplicate, found against earlier rows); row 4 has a bad score
    rows = edited(GOOD, 3, "evaluator_id", "cm2")
    rows[2][EVALUATION_COLUMNS.index("score")] = "abc"
    code, _, err = run(capsys, write_rows(tmp_path / "a", rows))
    assert code == 2 and "row 3, column evaluator_id: duplicate" in err
    # row 7 changes role (against row 6), row 9 has an unknown group
    rows = edited(GOOD, 7, "evaluatee_role", "cm")
    rows[7][EVALUATION_COLUMNS.index("group")] = "friends"
    code, _, err = run(capsys, write_rows(tmp_path / "b", rows))
    assert code == 2 and "row 7, column evaluatee_role:" in err


@pytest.mark.parametrize("quarter", ["2026Q5", "2026Q0", "2026q3", "26Q3", "2026-Q3",
                                     "2026Q3 ", "２０２６Q3", ""])
def test_a_bad_quarter_option_exits_2(capsys, tmp_path: Path, quarter: str) -> None:
    code, out, err = run(capsys, write_rows(tmp_path / "d", GOOD), quarter=quarter)
    assert code == 2 and "column --quarter:" in err and out == ""


def test_empty_files_and_missing_files_exit_2(capsys, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "d", [])
    code, _, err = run(capsys, data)
    assert code == 2 and "no data rows" in err and "evaluations.csv" in err
    (data / "evaluations.csv").write_text("", encoding="utf-8")
    code, _, err = run(capsys, data)
    assert code == 2 and "row 1" in err and "empty" in err
    (data / "evaluations.csv").unlink()
    code, _, err = run(capsys, data)
    assert code == 2 and "no evaluations.csv or evaluations.xlsx" in err
    code, _, err = run(capsys, tmp_path / "nowhere")
    assert code == 2 and "no such directory" in err


def test_header_and_row_shape_problems_exit_2(capsys, tmp_path: Path) -> None:
    header = [c if c != "score" else "points" for c in EVALUATION_COLUMNS]
    code, _, err = run(capsys, write_rows(tmp_path / "a", GOOD, header=header))
    assert code == 2 and "row 1, column score: missing column score" in err
    rows = [[Q, *r, "x"] for r in GOOD]
    code, _, err = run(capsys, write_rows(tmp_path / "b", rows,
                                          header=[*EVALUATION_COLUMNS, "comment"]))
    assert code == 2 and "row 1, column comment: unexpected column" in err
    rows = [[Q, *r] for r in GOOD]
    rows[1] = rows[1][:5]
    code, _, err = run(capsys, write_rows(tmp_path / "c", rows))
    assert code == 2 and "row 3: expected 7 fields, found 5" in err
    data = tmp_path / "e"
    data.mkdir()
    (data / "evaluations.csv").write_bytes(b"quarter,evaluatee_id\n\xff\xfe\n")
    code, _, err = run(capsys, data)
    assert code == 2 and "not UTF-8" in err


def test_rows_made_elsewhere_are_checked_too() -> None:
    def row(**changes: Any) -> EvaluationRow:
        values: dict[str, Any] = {"row": 7, "quarter": Q, "evaluatee_id": "cm1", "role": "cm",
                                  "team": "T", "evaluator_id": "x", "group": "peer",
                                  "score": Decimal("80")}
        return EvaluationRow(**{**values, **changes})

    cases: list[tuple[dict[str, Any], str]] = [({"score": Decimal("100.5")}, "score"),
                                               ({"score": Decimal("-1")}, "score"),
                                               ({"quarter": "2026Q4"}, "quarter"),
                                               ({"evaluator_id": "cm1"}, "evaluator_id"),
                                               ({"group": "gm"}, "group"),
                                               ({"role": "chief"}, "evaluatee_role")]
    for changes, column in cases:
        with pytest.raises(BadInput) as caught:
            compute_evaluation([row(**changes)], quarter=Q, file="forms")
        assert (caught.value.file, caught.value.row, caught.value.column) == (
            "forms", 7, column)
    with pytest.raises(BadInput) as caught:
        compute_evaluation([], quarter=Q)
    assert "no data rows" in str(caught.value)


# ------------------------------------------------------------------ formats


def test_csv_output_one_row_per_evaluatee_no_formulas(capsys, tmp_path: Path) -> None:
    rows = [("=1+2", "cm", "@team", "x", "peer", "80"), *GOOD]
    code, out, err = run(capsys, write_rows(tmp_path / "d", rows), "--format", "csv")
    assert code == 0, err
    assert out.splitlines() == [
        ",".join(SHEET_COLUMNS),
        "2026Q3,'=1+2,cm,'@team,80.00,80.00,,,,,group_missing;star",
        "2026Q3,cm1,cm,T1,71.00,85.00,70.00,60.00,,,star",
        "2026Q3,ra1,regional_assistant,T1,78.00,,90.00,40.00,70.00,100.00,",
        "2026Q3,rm1,regional,T1,74.00,,,90.00,75.00,50.00,",
    ]


def test_xlsx_in_and_out(capsys, tmp_path: Path) -> None:
    from openpyxl import Workbook, load_workbook

    data = tmp_path / "x"
    data.mkdir()
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(EVALUATION_COLUMNS))
    for n, r in enumerate(GOOD):  # numbers as spreadsheets store them
        score: Any = int(r[5]) if n % 2 else float(r[5])
        sheet.append([Q, *r[:5], score])
    book.save(data / "evaluations.xlsx")
    code, out, err = run(capsys, data)
    assert code == 0, err
    assert json.loads(out) == GOOD_JSON

    code, _, err = run(capsys, data, "--format", "xlsx")
    assert code == 2 and "column --out" in err
    target = tmp_path / "evaluation.xlsx"
    code, out, err = run(capsys, write_rows(tmp_path / "d", [
        ("=cmd", "cm", "T9", "x", "peer", "80.5"), *GOOD]), "--format", "xlsx", "--out",
        str(target))
    assert code == 0, err
    assert "wrote" in out
    book = load_workbook(target)
    sheet = book.active
    assert sheet is not None
    rows = list(sheet.iter_rows())
    assert rows[0][0].value == "季度"  # Chinese heads; the field names on sheet "fields"
    assert [r[2] for r in book["fields"].iter_rows(min_row=2, values_only=True)] == list(
        SHEET_COLUMNS)
    assert [c.value for c in rows[1]] == [Q, "=cmd", "营销经理", "T9", 80.5, 80.5, None, None,
                                          None, None, "有评价组未评；明星客户经理"]
    assert rows[1][1].data_type == "s"  # text, not a formula
    cm1 = {SHEET_COLUMNS[n]: cell for n, cell in enumerate(rows[2])}
    assert cm1["evaluatee_id"].value == "cm1" and cm1["evaluatee_id"].data_type == "s"
    for name, value in (("total", 71), ("peer", 85), ("regional", 70), ("marketing", 60)):
        assert cm1[name].data_type == "n" and cm1[name].value == value
        assert cm1[name].number_format == "0.00"
    assert cm1["sales"].value is None and cm1["flags"].value == "明星客户经理"
    assert len(rows) == 6 and rows[-1][0].value == "合计"


def test_an_unwritable_out_file_exits_2(capsys, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "d", GOOD)
    code, _, err = run(capsys, data, "--out", str(tmp_path / "no" / "such" / "out.json"))
    assert code == 2 and "column --out" in err


# ------------------------------------------------------------------ forms


def test_forms_total_100_and_form_total_checks_every_item() -> None:
    for form in (CM_FORM, MANAGER_FORM, TEAM_FORM):
        assert sum(form.values()) == 100
        assert form_total(form, {k: Decimal(v) for k, v in form.items()}) == 100
    assert list(CM_FORM.values()) == [20, 10, 10, 10, 10, 10, 10, 20]
    assert list(MANAGER_FORM.values()) == [20, 10, 30, 10, 20, 10]
    assert list(TEAM_FORM.values()) == [50, 10, 20, 20]
    full = {k: Decimal(v) for k, v in CM_FORM.items()}
    assert form_total(CM_FORM, {**full, "专业技能": Decimal("7.5"), "劳动纪律": 18}) == Decimal(
        "95.5")
    for scores, item in [({**full, "专业技能": Decimal("10.01")}, "专业技能"),
                         ({**full, "劳动纪律": Decimal("-1")}, "劳动纪律"),
                         ({**full, "执行力": Decimal("9.999")}, "执行力"),
                         ({**full, "执行力": Decimal("NaN")}, "执行力"),
                         ({**full, "颜值": Decimal("1")}, "颜值"),
                         ({k: v for k, v in full.items() if k != "工作效率"}, "工作效率")]:
        with pytest.raises(BadInput) as caught:
            form_total(CM_FORM, scores)
        assert caught.value.column == item


# ------------------------------------------------------------------ properties

cents = st.integers(min_value=0, max_value=10_000)


def score_text(c: int) -> str:
    return str(c // 100) if c % 100 == 0 else f"{c // 100}.{c % 100:02d}"


people = st.lists(
    st.tuples(st.sampled_from(sorted(WEIGHTS)), st.sampled_from(["T1", "T2", "Ω"]),
              st.lists(st.lists(cents, max_size=3), min_size=4, max_size=4)),
    min_size=1, max_size=8)


def checked_path(path: Path) -> QuarterEvaluation:
    return compute_evaluation(read_evaluations(path, quarter=Q), quarter=Q, file=str(path))


def outcome(compute: Any) -> Any:
    try:
        return result_json(compute())
    except BadInput as exc:
        return str(exc)


def test_clean_files_take_the_fast_path_and_others_the_checked_one(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "a", GOOD) / "evaluations.csv"
    assert _fast_evaluation(path, quarter=Q, on_row=None) == checked_path(path)
    rows = [[Q, *r] for r in GOOD]
    rows[5][1] = " rm1"  # trimmed by the checked path: same result, not the fast path
    path = write_rows(tmp_path / "b", rows) / "evaluations.csv"
    assert _fast_evaluation(path, quarter=Q, on_row=None) is None
    assert result_json(evaluation_from_directory(quarter=Q, data_dir=tmp_path / "b")) == (
        GOOD_JSON)


def half_up(x: Fraction) -> Decimal:
    return Decimal(int(x * 100 + Fraction(1, 2))).scaleb(-2)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=people, order=st.randoms(use_true_random=False))
def test_totals_match_exact_arithmetic_and_lie_between_the_means(tmp_path: Path, people,
                                                                 order) -> None:
    rows: list[Row] = []
    expected: dict[str, dict[str, Any]] = {}
    for n, (role, team, scores) in enumerate(people):
        evaluatee = f"p{n}"
        weights = WEIGHTS[role]
        means = {g: Fraction(sum(s), 100 * len(s)) for g, s in zip(weights, scores, strict=False)
                 if s}
        for group, group_scores in zip(weights, scores, strict=False):
            rows += [(evaluatee, role, team, f"e{k}", group, score_text(c))
                     for k, c in enumerate(group_scores)]
        if means:
            total = half_up(sum((weights[g] * m for g, m in means.items()), Fraction(0))
                            / sum(weights[g] for g in means))
            expected[evaluatee] = {"role": role, "team": team, "total": total,
                                   "means": {g: half_up(m) for g, m in means.items()}}
    if not rows:
        return
    order.shuffle(rows)
    evaluation = evaluation_from_directory(quarter=Q, data_dir=write_rows(tmp_path, rows))
    assert isinstance(evaluation, QuarterEvaluation)
    assert evaluation == checked_path(tmp_path / "evaluations.csv")  # fast path = checked
    ids = [r.evaluatee_id for r in evaluation.results]
    assert ids == sorted(expected)
    for result in evaluation.results:
        want = expected[result.evaluatee_id]
        assert result.total == want["total"] and result.groups == want["means"]
        assert min(result.groups.values()) <= result.total <= max(result.groups.values())
        assert list(result.flags) == sorted(result.flags)
        assert ("below_60" in result.flags) == (result.total < 60)
        assert ("convert_to_cm" in result.flags) == (result.total < 60
                                                     and result.role == "regional")
        assert ("group_missing" in result.flags) == (len(result.groups)
                                                     < len(WEIGHTS[result.role]))
    for team in {r.team for r in evaluation.results}:
        eligible = [r for r in evaluation.results
                    if r.team == team and r.role == "cm" and r.total >= 60]
        stars = [r.evaluatee_id for r in evaluation.results
                 if r.team == team and "star" in r.flags]
        best = min(eligible, key=lambda r: (-r.total, r.evaluatee_id), default=None)
        assert stars == ([best.evaluatee_id] if best else [])
    assert result_csv(evaluation).count("\n") == len(ids) + 1


def mutated(changes: list[tuple[int, int, str]]) -> bytes:
    """The GOOD file with a few cells replaced (rows may then clash with earlier ones)."""
    table = [[Q, *r] for r in GOOD]
    for row, column, value in changes:
        table[row][column] = value
    buffer = io.StringIO()
    csv.writer(buffer).writerows([EVALUATION_COLUMNS, *table])
    return buffer.getvalue().encode("utf-8", "surrogatepass")


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 6),
                                  st.sampled_from(["", " ", "cm1", "cm2", "rm1", "mk1", "T2",
                                                   "cm", "regional", "peer", "sales", "gm",
                                                   "2026Q2", "100", "100.5", "59.99", " 80",
                                                   "cm1 ", "regional_assistant"])),
                        max_size=3))
def test_the_fast_path_agrees_with_the_checked_path(tmp_path: Path, changes) -> None:
    (tmp_path / "evaluations.csv").write_bytes(mutated(changes))
    fast = outcome(lambda: evaluation_from_directory(quarter=Q, data_dir=tmp_path))
    assert fast == outcome(lambda: checked_path(tmp_path / "evaluations.csv"))


TOKENS = [Q, "2026Q2", "cm1", "cm2", "rm1", "cm", "regional", "regional_assistant", "boss",
          "T1", "peer", "sales", "gm", "marketing", "80", "100", "100.01", "59.995", "1e3",
          "", " ", '"', "\n", "\r\n", "\x00", "\ufeff", "\u2028", "=1+2", "é", ",", ",,"]
HEADER = ",".join(EVALUATION_COLUMNS) + "\n"
hostile = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.tuples(st.sampled_from([HEADER, HEADER.upper(), "\ufeff" + HEADER, ""]),
              st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)), max_size=60))
    .map(lambda h: (h[0] + "".join(h[1])).encode("utf-8", "surrogatepass")),
    st.lists(st.tuples(*(st.sampled_from(TOKENS) for _ in range(7))), max_size=6)
    .map(lambda rows: (HEADER + "".join(",".join(r) + "\n" for r in rows)).encode()),
    st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 6),
                       st.one_of(st.sampled_from(TOKENS), st.text(max_size=3))), max_size=3)
    .map(mutated),
)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=hostile, output=st.sampled_from(["json", "csv"]),
       name=st.sampled_from(["evaluations.csv", "evaluations.csv", "evaluations.xlsx"]))
def test_hostile_files_exit_0_or_2_and_never_raise(capsys, tmp_path: Path, content: bytes,
                                                   output: str, name: str) -> None:
    for old in tmp_path.glob("evaluations.*"):
        old.unlink()
    (tmp_path / name).write_bytes(content)
    code, out, err = run(capsys, tmp_path, "--format", output)
    assert code in (0, 2), err
    event(f"exit {code}")
    if code == 0:
        if output == "json":
            assert json.loads(out)["quarter"] == Q
    else:
        assert err.startswith("brokerflow: ") and out == ""
