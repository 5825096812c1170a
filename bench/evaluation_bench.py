"""Quarterly-evaluation benchmark: 100,000 evaluation rows through ``brokerflow evaluation
compute`` against reading the same file with ``csv.DictReader``.

Run: .venv/bin/python bench/evaluation_bench.py [--evaluatees 10000] [--repeat 5] [--json FILE]

Goal (issue): 10,000 evaluatees x 10 evaluations each (100,000 rows) in <= 3 x the time
``csv.DictReader`` needs to read the file.

1. Generator (own, seeded): teams of 23 sales CMs, one regional manager and one assistant
   (N = 10,000 gives 400 teams: 9,200 ``cm``, 400 ``regional``, 400 ``regional_assistant``);
   10 marketing-dept evaluators and one general manager.  Every evaluatee has exactly 10
   rows: a CM 6 peers of the team, the team's regional manager and 3 marketing evaluators
   (1 % of CMs have no marketing row: 4 more peers instead); a regional manager 8 CMs of the
   team, 1 marketing, the general manager; an assistant 7 CMs, the regional manager,
   1 marketing, the general manager.  Scores are whole numbers mostly, some with one or two
   decimals, ~5 % of evaluatees scored low.  Rows are shuffled (forms come in any order) and
   written with ``csv.writer``.
2. Timed, best of ``--repeat`` with ``time.perf_counter``, interleaved: (a) ``csv.DictReader``
   iterating every row and doing nothing with it; (b) ``evaluation_from_directory`` in this
   process (read, check, compute; no output); (c) ``brokerflow evaluation compute --quarter
   2026Q3 --data DIR --format json --out FILE`` as a subprocess (the console script next to
   this interpreter), whose output is checked.  For reference: a plain ``csv.reader`` pass,
   and (c) on an 11-row file (the command's start-up: interpreter and imports).

Not a test: prints figures only.  Temp files are removed on exit.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import load_now  # noqa: E402  (bench/ is on sys.path when run)

from brokerflow.payroll.evaluation import (  # noqa: E402
    EVALUATION_COLUMNS,
    evaluation_from_directory,
)

BROKERFLOW = Path(sys.executable).parent / "brokerflow"
QUARTER = "2026Q3"
GOAL_RATIO = 3.0
TEAM_CMS = 23


def _score(rng: random.Random, low: bool) -> str:
    base = rng.randint(35, 70) if low else rng.randint(60, 100)
    kind = rng.random()
    if kind < 0.7 or base == 100:
        return str(base)
    if kind < 0.85:
        return f"{base}.{rng.randint(0, 9)}"
    return f"{base}.{rng.randint(0, 99):02d}"


def generate(directory: Path, *, evaluatees: int, seed: int = 4) -> dict[str, Any]:
    """``directory/evaluations.csv``; returns what was generated."""
    rng = random.Random(seed)
    teams = max(1, evaluatees // (TEAM_CMS + 2))
    marketing = [f"mk{n:02d}" for n in range(1, 11)]
    rows: list[tuple[str, ...]] = []
    roles: Counter[str] = Counter()
    made = 0
    for t in range(1, teams + 1):
        team, manager, assistant = f"T{t:03d}", f"rm{t:03d}", f"ra{t:03d}"
        size = TEAM_CMS if t < teams else max(1, evaluatees - made - 2)
        cms = [f"cm{made + n:05d}" for n in range(1, size + 1)]
        made += size + 2

        def add(evaluatee: str, role: str, evaluators: list[tuple[str, str]],
                team: str = team) -> None:
            low = rng.random() < 0.05
            roles[role] += 1
            for evaluator, group in evaluators:
                rows.append((QUARTER, evaluatee, role, team, evaluator, group,
                             _score(rng, low)))

        for cm in cms:
            others = [c for c in cms if c != cm]
            if rng.random() < 0.01:
                add(cm, "cm", [(p, "peer") for p in rng.sample(others, min(9, len(others)))]
                    + [(manager, "regional")])
            else:
                add(cm, "cm", [(p, "peer") for p in rng.sample(others, min(6, len(others)))]
                    + [(manager, "regional")]
                    + [(m, "marketing") for m in rng.sample(marketing, 3)])
        add(manager, "regional", [(c, "sales") for c in rng.sample(cms, min(8, len(cms)))]
            + [(rng.choice(marketing), "marketing"), ("gm1", "gm")])
        add(assistant, "regional_assistant",
            [(c, "sales") for c in rng.sample(cms, min(7, len(cms)))]
            + [(manager, "regional"), (rng.choice(marketing), "marketing"), ("gm1", "gm")])
    rng.shuffle(rows)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "evaluations.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(EVALUATION_COLUMNS)
        writer.writerows(rows)
    return {"rows": len(rows), "evaluatees": sum(roles.values()), "roles": dict(roles),
            "teams": teams, "bytes": path.stat().st_size}


def dictreader_pass(directory: Path) -> float:
    t0 = time.perf_counter()
    with (directory / "evaluations.csv").open(newline="", encoding="utf-8-sig") as handle:
        for _row in csv.DictReader(handle):
            pass
    return time.perf_counter() - t0


def reader_pass(directory: Path) -> float:
    t0 = time.perf_counter()
    with (directory / "evaluations.csv").open(newline="", encoding="utf-8-sig") as handle:
        for _row in csv.reader(handle):
            pass
    return time.perf_counter() - t0


def in_process(directory: Path) -> float:
    t0 = time.perf_counter()
    evaluation_from_directory(quarter=QUARTER, data_dir=directory)
    return time.perf_counter() - t0


def cli_run(directory: Path, out: Path) -> tuple[float, dict[str, Any]]:
    cmd = [str(BROKERFLOW), "evaluation", "compute", "--quarter", QUARTER, "--data",
           str(directory), "--format", "json", "--out", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"evaluation compute failed ({done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    result = json.loads(out.read_text(encoding="utf-8"))
    out.unlink()
    return wall, result


def best(times: list[float]) -> float:
    return min(times)


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "nproc": str(os.cpu_count()), "python": platform.python_version(),
            "loadavg": load_now(" ")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluatees", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each; best wins")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    t_script = time.monotonic()
    info = machine()
    print("machine:", json.dumps(info, ensure_ascii=False), flush=True)
    figures: dict[str, Any] = {"machine": info}
    tmp = Path(tempfile.mkdtemp(prefix="bf-evaluation-bench-"))
    try:
        t0 = time.perf_counter()
        gen = generate(tmp / "data", evaluatees=args.evaluatees)
        print(f"\n1. generated {gen['rows']:,} rows ({gen['bytes'] / 1024**2:.1f} MiB), "
              f"{gen['evaluatees']:,} evaluatees {gen['roles']}, {gen['teams']} teams, in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        figures["generated"] = gen
        tiny = tmp / "tiny"
        tiny_rows = generate(tiny, evaluatees=1)["rows"]
        startup = best([cli_run(tiny, tmp / "tiny.json")[0] for _ in range(3)])
        print(f"\n2. start-up: the command on a {tiny_rows}-row file, best of 3: "
              f"{startup:.3f} s", flush=True)

        timings: dict[str, list[float]] = {"dictreader": [], "in_process": [], "cli": []}
        runs: dict[str, Callable[[], float]] = {
            "dictreader": lambda: dictreader_pass(tmp / "data"),
            "in_process": lambda: in_process(tmp / "data"),
            "cli": lambda: cli_run(tmp / "data", tmp / "out.json")[0],
        }
        for n in range(1, args.repeat + 1):
            for name, run in runs.items():
                timings[name].append(run())
            print(f"  #{n}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in timings.items()),
                  flush=True)
        plain = best([reader_pass(tmp / "data") for _ in range(3)])
        _, result = cli_run(tmp / "data", tmp / "out.json")
        flags = Counter(f for r in result["results"] for f in r["flags"])
        print(f"  output: {len(result['results']):,} results; flags {dict(flags)}")
        dr, inner, cli = (best(timings[k]) for k in ("dictreader", "in_process", "cli"))
        ratios = {"in_process": inner / dr, "cli": cli / dr, "cli_minus_startup":
                  (cli - startup) / dr}
        print(f"  best: DictReader {dr:.3f} s, csv.reader {plain:.3f} s, "
              f"evaluation_from_directory {inner:.3f} s, CLI {cli:.3f} s "
              f"(start-up {startup:.3f} s)")
        for name, ratio in ratios.items():
            print(f"  {name} / DictReader: {ratio:.2f}x -> "
                  f"{'met' if ratio <= GOAL_RATIO else 'NOT met'} (goal <= {GOAL_RATIO:g}x)")
        figures.update(timings=timings, csv_reader_s=plain, startup_s=startup, ratios=ratios,
                       results=len(result["results"]), flags=dict(flags))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info["end_loadavg"] = load_now(" ")
    print(f"\nload average at end: {info['end_loadavg']}; total "
          f"{time.monotonic() - t_script:.0f} s; temp dir removed: {not tmp.exists()}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
