"""Spreadsheet inputs benchmark (issue 17): what reading a CRM export the way a branch's
spreadsheet saves it costs ``brokerflow payroll compute`` on the payroll benchmark's 10,000-CM
export (3 million client rows).

Run: .venv/bin/python bench/spreadsheet_inputs_bench.py [--cms 10000] [--repeat 2]
     [--baseline-src DIR] [--json FILE]

1. ``bench/payroll_bench.py``'s seeded generator writes staff.csv and clients.csv (English
   headers, UTF-8, ISO months) — the export as SPEC §6.2 gives it.
2. The same data as Excel on Chinese Windows saves it: GBK, Chinese headers, 是/否, 个人/机构,
   Chinese positions, every month cell turned into a date (``2026/10/1``).
3. ``brokerflow payroll compute`` on each, ``--repeat`` times, interleaved (subprocess under
   ``/usr/bin/time -v``: wall time and peak RSS); the two JSON results must be identical.
4. With ``--baseline-src DIR`` (a checkout of the commit before issue 17, e.g. made with
   ``git worktree add DIR 27d295c``), the English export once more through that checkout's
   reader (``PYTHONPATH=DIR``), interleaved, to see what the new reader costs on the old input.

Goals: the English export no more than 5 % slower than the baseline; the Chinese/GBK export no
more than 25 % slower than the English one.  Prints figures only; not a test.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from payroll_bench import (  # noqa: E402  (bench/ is on sys.path when run)
    BROKERFLOW,
    MONTH,
    POLICY,
    TIME_BIN,
    _time_v,
    generate,
    machine,
)

from brokerflow.kernel.input_columns import (  # noqa: E402
    CLIENT_TYPE_WORDS,
    CLIENTS,
    POSITION_WORDS,
    STAFF,
)

YES_NO = {"true": "是", "false": "否"}


def to_chinese_gbk(source: Path, target: Path) -> None:
    """The export as a spreadsheet on a Chinese system saves it (see the module text)."""
    target.mkdir(parents=True, exist_ok=True)
    words = {"client_type": {k: v[0] for k, v in CLIENT_TYPE_WORDS.items()},
             "position": {k: v[0] for k, v in POSITION_WORDS.items()}}
    for name, columns in (("staff.csv", STAFF), ("clients.csv", CLIENTS)):
        chinese = {c.name: c.chinese for c in columns}
        with (source / name).open(newline="", encoding="utf-8") as src, \
                (target / name).open("w", newline="", encoding="gbk") as out:
            reader, writer = csv.reader(src), csv.writer(out)
            header = next(reader)
            writer.writerow([chinese[h] for h in header])
            converters = []
            for column in header:
                if column == "month":
                    converters.append(lambda v: f"{v[:4]}/{int(v[5:7])}/1")
                elif column in words:
                    converters.append(lambda v, table=words[column]: table.get(v, v))
                else:
                    converters.append(lambda v: YES_NO.get(v, v))
            for row in reader:
                writer.writerow([convert(v) for convert, v in zip(converters, row, strict=True)])


def compute(directory: Path, out: Path, *, pythonpath: str | None = None) -> tuple[float, int,
                                                                                    str]:
    """(wall seconds, peak RSS bytes, result text) of one ``payroll compute``."""
    env = dict(os.environ)
    cmd = [str(BROKERFLOW), "payroll", "compute", "--month", MONTH, "--data", str(directory),
           "--policy", str(POLICY), "--format", "json", "--out", str(out)]
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
        cmd = [sys.executable, "-m", "brokerflow", *cmd[1:]]
    if TIME_BIN.exists():
        cmd = [str(TIME_BIN), "-v", *cmd]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"compute failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rss = int(_time_v(done.stderr, "Maximum resident set size") or 0) * 1024
    text = out.read_text(encoding="utf-8")
    out.unlink()
    return wall, rss, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cms", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--baseline-src", type=Path, help="a checkout of the earlier reader")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures: dict[str, object] = {"machine": machine(), "cms": args.cms}
    with tempfile.TemporaryDirectory(prefix="bf-sheets-") as tmp:
        english, chinese, out = Path(tmp) / "en", Path(tmp) / "zh", Path(tmp) / "out.json"
        t0 = time.perf_counter()
        generated = generate(english, n_cms=args.cms)
        figures["client_rows"] = generated.client_rows
        figures["generate_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        to_chinese_gbk(english, chinese)
        figures["convert_s"] = round(time.perf_counter() - t0, 1)
        figures["sizes_mib"] = {d.name: round(sum(f.stat().st_size for f in d.iterdir())
                                              / 1024**2, 1) for d in (english, chinese)}
        runs: dict[str, list[float]] = {"english": [], "chinese_gbk": []}
        if args.baseline_src:
            runs["baseline_english"] = []
        rss: dict[str, int] = {}
        results: dict[str, str] = {}
        for _ in range(args.repeat):
            for label, directory, path in (("english", english, None),
                                           ("chinese_gbk", chinese, None),
                                           ("baseline_english", english,
                                            str(args.baseline_src) if args.baseline_src
                                            else None)):
                if label not in runs:
                    continue
                wall, peak, text = compute(directory, out, pythonpath=path)
                runs[label].append(round(wall, 2))
                rss[label] = max(rss.get(label, 0), peak)
                results[label] = text
                print(f"{label}: {wall:.2f} s, peak RSS {peak / 1024**2:,.0f} MiB", flush=True)
        same = results["english"] == results["chinese_gbk"]
        figures["runs_s"] = runs
        figures["peak_rss_mib"] = {k: round(v / 1024**2) for k, v in rss.items()}
        figures["same_result"] = same
        median = {k: statistics.median(v) for k, v in runs.items()}
        figures["chinese_over_english"] = round(median["chinese_gbk"] / median["english"], 3)
        if "baseline_english" in median:
            figures["english_over_baseline"] = round(
                median["english"] / median["baseline_english"], 3)
            figures["baseline_same_result"] = results["baseline_english"] == results["english"]
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n",
                             encoding="utf-8")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
