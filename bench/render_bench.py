"""Render benchmark: PDF render time of a Chinese document vs. the same layout in ASCII.

Run: .venv/bin/python bench/render_bench.py [--runs 30] [--warmup 3] [--no-cold]

Measures, warm (one DocumentRenderer reused, warm-up renders first):
  * a one-page FIL document with Chinese subject/body/branch name/signatures vs. the same
    template with ASCII text of the same character count (goal: Chinese <= 3x ASCII);
  * the same ASCII data through a copy of the templates whose Chinese labels are replaced by
    ASCII, i.e. a document with no CJK glyph at all (reference only);
  * a 3-page PAY table (line count searched so the Chinese version fills 3 A4 pages, checked
    with pdfinfo), Chinese vs. ASCII names;
  * a cold first render in a fresh process (imports + FontConfiguration + first render);
  * which font subsetter WeasyPrint used (HarfBuzz-subset or fontTools), counted per call.

Not a test: prints figures only.  Bounded: about 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import load_now  # noqa: E402  (bench/ is on sys.path when run)

from brokerflow.kernel.render import DEFAULT_TEMPLATES_DIR, DocumentRenderer  # noqa: E402

CJK_RUN = re.compile(r"[\u2e80-\u9fff\u3000-\u303f\uff00-\uffef]+")
SUBSET_CALLS: Counter[str] = Counter()

# --------------------------------------------------------------------------- data

ZH_PARA = (
    "根据公司经纪业务发展规划，本营业部拟于下季度在福田区设立驻点服务团队，"
    "由区域经理统筹、驻点经理具体负责客户开发与维护工作。驻点场地由合作银行无偿提供，"
    "营业部承担必要的设备购置及日常运营费用，预计全年支出不超过人民币十二万元。"
)
EN_PARA = (
    "Per the brokerage development plan the branch intends to open a stationed service "
    "team in Futian next quarter, led by the regional manager with the stationed manager "
    "in charge of client development. The partner bank provides the site free of charge."
)


def ascii_like(text: str, filler: str) -> str:
    """ASCII text with exactly ``len(text)`` characters, taken cyclically from ``filler``."""
    out = (filler * (len(text) // len(filler) + 1))[: len(text)]
    return out[:-1] + "." if out.endswith(" ") else out


def one_page_data(chinese: bool) -> dict[str, Any]:
    zh_body = "\n".join([ZH_PARA] * 3)
    zh = {
        "branch": "SZ01",
        "branch_name": "深圳福田营业部",
        "subject": "关于设立福田区驻点服务团队并申请相关费用的请示",
        "serial": "SZ01-FIL-2026-000042",
        "date": "2026-03-15",
        "body": {
            "kind": "费用申请",
            "submitted_by": "深圳福田营业部综合管理岗",
            "revision": 1,
            "text": zh_body,
            "attachments": ["驻点合作协议（草案）", "费用预算明细表"],
        },
        "signatures": [
            {"role": "营业部经理", "name": "周涛", "decision": "approve",
             "time": "2026-03-15 10:02", "opinion": "同意，请综合室审核。"},
            {"role": "经纪业务综合室", "name": "王敏", "decision": "approve",
             "time": "2026-03-16 09:40", "opinion": "材料齐全，建议报渠道管理部会签。"},
            {"role": "渠道管理部", "name": "李强", "decision": "pending",
             "time": "", "opinion": ""},
        ],
    }
    if chinese:
        return zh
    filler = EN_PARA + " "
    en = json.loads(json.dumps(zh))
    en["branch_name"] = ascii_like(zh["branch_name"], "Shenzhen Futian ")
    en["subject"] = ascii_like(zh["subject"], "Request to open a stationed team in Futian ")
    en["body"]["kind"] = ascii_like(zh["body"]["kind"], "Expense ")
    en["body"]["submitted_by"] = ascii_like(zh["body"]["submitted_by"], "Branch admin desk ")
    en["body"]["text"] = "\n".join(ascii_like(p, filler) for p in zh_body.split("\n"))
    en["body"]["attachments"] = [ascii_like(a, "Draft agreement ")
                                 for a in zh["body"]["attachments"]]
    names = iter(["Zhou Tao", "Wang Min", "Li Qiang"])
    for sig in en["signatures"]:
        sig["role"] = ascii_like(sig["role"], "Branch manager ")
        sig["name"] = next(names)
        sig["opinion"] = ascii_like(sig["opinion"], "Agreed, please review. ")
    return en


ZH_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
ZH_GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰"]
EN_SURNAMES = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou"]
EN_GIVEN = ["Wei", "Fang", "Na", "Xiuying", "Min", "Jing", "Li", "Qiang", "Lei", "Jun"]
ZH_LEVELS = ["客户经理一级", "客户经理二级", "高级客户经理"]
EN_LEVELS = ["CM level 1", "CM level 2", "Senior CM"]


def pay_data(chinese: bool, n_lines: int) -> dict[str, Any]:
    lines = []
    for i in range(n_lines):
        if chinese:
            name = ZH_SURNAMES[i % len(ZH_SURNAMES)] + ZH_GIVEN[i % len(ZH_GIVEN)]
            level = ZH_LEVELS[i % 3]
            flags = ["新人保护期"] if i % 7 == 0 else []
        else:
            name = f"{EN_SURNAMES[i % len(EN_SURNAMES)]} {EN_GIVEN[(i // 3) % len(EN_GIVEN)]}"
            level = EN_LEVELS[i % 3]
            flags = ["new-hire"] if i % 7 == 0 else []
        fixed = 4000 + (i % 5) * 500
        commission = round(1234.56 + (i * 37.3) % 5000, 2)
        gross = round(fixed + commission, 2)
        risk = round(commission * 0.1, 2)
        lines.append({
            "cm_id": f"cm{i + 1:04d}", "name": name, "level": level,
            "valid_accounts": 10 + i % 40, "score": round(60 + (i * 7) % 40, 1),
            "fixed_pay": f"{fixed:.2f}", "commission": f"{commission:.2f}",
            "gross": f"{gross:.2f}", "risk_fund_withheld": f"{risk:.2f}",
            "net_pay": f"{gross - risk:.2f}", "flags": flags,
        })
    totals = {k: f"{sum(float(line[k]) for line in lines):.2f}"
              for k in ("gross", "risk_fund_withheld", "net_pay")}
    return {
        "branch": "SZ01",
        "branch_name": "深圳福田营业部" if chinese else "Shenzhen Futian",
        "subject": "2026年2月客户经理薪酬月报" if chinese else "CM pay report Feb 2026 ...",
        "serial": "SZ01-PAY-2026-000007",
        "date": "2026-03-05",
        "body": {"month": "2026-02", "lines": lines, "totals": totals},
        "signatures": [
            {"role": "主办会计" if chinese else "Chief acct", "name": "郑丽" if chinese else
             "Zheng Li", "decision": "approve", "time": "2026-03-05 09:00", "opinion": ""},
        ],
    }


#: Names with CJK Extension A (䶮 U+4DAE) and B (𠀀 U+20000, 𪚥 U+2A6A5) characters: drawn by
#: the fallback fonts (Noto Sans CJK SC, HanaMinB), two more fonts subset and embedded.
RARE_NAMES = ["刘䶮", "王\U00020000", "李\U0002A6A5"]


def with_rare_names(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its signers (FIL) or every tenth line's name (PAY) rare."""
    rare = json.loads(json.dumps(data))
    for i, sig in enumerate(rare.get("signatures", [])):
        sig["name"] = RARE_NAMES[i % len(RARE_NAMES)]
    for i, line in enumerate(rare["body"].get("lines", [])):
        if i % 10 == 0:
            line["name"] = RARE_NAMES[(i // 10) % len(RARE_NAMES)]
    return rare


# --------------------------------------------------------------------------- helpers


def pdf_pages(pdf: bytes) -> int:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(pdf)
        f.flush()
        out = subprocess.run(["pdfinfo", f.name], capture_output=True, text=True,
                             check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", out, re.M).group(1))  # type: ignore[union-attr]


def timed(fns: dict[str, Callable[[], bytes]], runs: int,
          warmup: int) -> dict[str, tuple[list[float], bytes]]:
    """Time each function ``runs`` times, interleaved round-robin (no order bias)."""
    pdfs = {label: b"" for label in fns}
    for _ in range(warmup):
        for label, fn in fns.items():
            pdfs[label] = fn()
    times: dict[str, list[float]] = {label: [] for label in fns}
    for _ in range(runs):
        for label, fn in fns.items():
            t0 = time.perf_counter()
            pdfs[label] = fn()
            times[label].append(time.perf_counter() - t0)
    return {label: (times[label], pdfs[label]) for label in fns}


def summary(times: list[float]) -> dict[str, float]:
    return {"mean_ms": statistics.fmean(times) * 1000,
            "median_ms": statistics.median(times) * 1000,
            "min_ms": min(times) * 1000, "max_ms": max(times) * 1000}


def ascii_templates(dest: Path) -> Path:
    """Copy of the templates with every CJK run replaced by as many 'x' (same layout)."""
    dest.mkdir(parents=True, exist_ok=True)
    for src in DEFAULT_TEMPLATES_DIR.glob("*.html"):
        text = CJK_RUN.sub(lambda m: "x" * len(m.group(0)), src.read_text(encoding="utf-8"))
        (dest / src.name).write_text(text, encoding="utf-8")
    return dest


def count_subsetter_calls() -> dict[str, Any]:
    """Wrap WeasyPrint's two subsetters to count which one actually runs."""
    from weasyprint.pdf import fonts
    from weasyprint.text.ffi import harfbuzz, harfbuzz_subset

    for name in ("_harfbuzz_subset", "_fonttools_subset"):
        original = getattr(fonts.Font, name)

        def wrapper(self: Any, *args: Any, _o: Any = original, _n: str = name) -> Any:
            SUBSET_CALLS[_n] += 1
            return _o(self, *args)

        setattr(fonts.Font, name, wrapper)
    return {"harfbuzz_subset_loaded": harfbuzz_subset is not None,
            "harfbuzz_ge_4_1": bool(harfbuzz.hb_version_atleast(4, 1, 0))}


COLD_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from brokerflow.kernel.render import DocumentRenderer
r = DocumentRenderer()
t1 = time.perf_counter()
r.render_pdf("FIL", json.loads(sys.stdin.read()))
t2 = time.perf_counter()
print(json.dumps({{"import_and_init_s": t1 - t0, "first_render_s": t2 - t1}}))
"""


def cold_render(data: dict[str, Any]) -> dict[str, float]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", COLD_SCRIPT.format(root=str(ROOT))],
                         input=json.dumps(data), capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = time.perf_counter() - t0
    return result


def find_three_page_lines(renderer: DocumentRenderer) -> int:
    """Largest line count whose Chinese PAY document is exactly 3 pages."""
    lo, hi = 40, 200  # lo: <= 3 pages, hi: > 3 pages (checked below)
    assert pdf_pages(renderer.render_pdf("PAY", pay_data(True, lo))) <= 3
    assert pdf_pages(renderer.render_pdf("PAY", pay_data(True, hi))) > 3
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pdf_pages(renderer.render_pdf("PAY", pay_data(True, mid))) <= 3:
            lo = mid
        else:
            hi = mid
    return lo


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-cold", action="store_true")
    args = parser.parse_args()

    import weasyprint

    subsetter = count_subsetter_calls()
    print(f"weasyprint {weasyprint.__version__}; harfbuzz-subset loaded: "
          f"{subsetter['harfbuzz_subset_loaded']}; harfbuzz >= 4.1: "
          f"{subsetter['harfbuzz_ge_4_1']}")

    bench_start = time.perf_counter()
    load_start = load_now()
    renderer = DocumentRenderer()
    results: dict[str, dict[str, Any]] = {}

    def run(cases: dict[str, tuple[DocumentRenderer, str, dict[str, Any]]]) -> None:
        fns = {label: (lambda r=r, t=t, d=d: r.render_pdf(t, d))
               for label, (r, t, d) in cases.items()}
        for label, (times, pdf) in timed(fns, args.runs, args.warmup).items():
            results[label] = summary(times) | {"pages": pdf_pages(pdf),
                                               "pdf_kb": len(pdf) / 1024}

    zh1, en1 = one_page_data(True), one_page_data(False)
    with tempfile.TemporaryDirectory() as tmp:
        plain = DocumentRenderer(templates_dir=ascii_templates(Path(tmp) / "templates"))
        plain.env.globals["decision_label"] = lambda d: d
        en1_plain = dict(en1, title="Request for approval")
        run({"1p FIL zh": (renderer, "FIL", zh1),
             "1p FIL ascii": (renderer, "FIL", en1),
             "1p FIL ascii, ascii template": (plain, "FIL", en1_plain)})

    n_lines = find_three_page_lines(renderer)
    print(f"PAY line count for 3 pages (Chinese names): {n_lines}")
    pay_zh = pay_data(True, n_lines)
    run({f"3p PAY zh ({n_lines} lines)": (renderer, "PAY", pay_zh),
         f"3p PAY ascii ({n_lines} lines)": (renderer, "PAY", pay_data(False, n_lines)),
         "1p FIL rare names": (renderer, "FIL", with_rare_names(zh1)),
         f"3p PAY rare names ({n_lines} lines)": (renderer, "PAY", with_rare_names(pay_zh))})

    print(f"\nwarm renders: {args.runs} timed after {args.warmup} warm-ups, one renderer")
    print(f"{'document':36} {'mean ms':>8} {'median':>8} {'min':>8} {'max':>8} "
          f"{'pages':>5} {'PDF kB':>7}")
    for label, r in results.items():
        print(f"{label:36} {r['mean_ms']:8.1f} {r['median_ms']:8.1f} {r['min_ms']:8.1f} "
              f"{r['max_ms']:8.1f} {r['pages']:5d} {r['pdf_kb']:7.1f}")

    keys = list(results)
    r1 = results[keys[0]]["mean_ms"] / results[keys[1]]["mean_ms"]
    r1m = results[keys[0]]["median_ms"] / results[keys[1]]["median_ms"]
    r1p = results[keys[0]]["mean_ms"] / results[keys[2]]["mean_ms"]
    r3 = results[keys[3]]["mean_ms"] / results[keys[4]]["mean_ms"]
    print(f"\nratio 1-page zh / ascii (same template): mean {r1:.2f}x, median {r1m:.2f}x "
          f"(goal <= 3x: {'met' if r1 <= 3 else 'NOT met'})")
    print(f"ratio 1-page zh / ascii with ASCII-only template: mean {r1p:.2f}x")
    print(f"ratio 3-page PAY zh / ascii: mean {r3:.2f}x")
    rare_fil = results[keys[5]]["mean_ms"]
    rare_pay = results[keys[6]]["mean_ms"]
    print(f"rare names (Extension A/B): 1-page FIL {rare_fil / results[keys[0]]['mean_ms']:.2f}x "
          f"the common-name page, {rare_fil / results[keys[1]]['mean_ms']:.2f}x ASCII "
          f"(goal <= 3x: {'met' if rare_fil <= 3 * results[keys[1]]['mean_ms'] else 'NOT met'});"
          f" 3-page PAY {rare_pay / results[keys[3]]['mean_ms']:.2f}x the common-name PAY")
    print(f"subsetter calls: {dict(SUBSET_CALLS)}")

    if not args.no_cold:
        colds = [cold_render(zh1) for _ in range(3)]
        print("\ncold first render (fresh process, 1-page FIL zh), 3 processes:")
        for c in colds:
            print(f"  import+init {c['import_and_init_s'] * 1000:7.0f} ms   first render "
                  f"{c['first_render_s'] * 1000:7.0f} ms   process wall "
                  f"{c['process_wall_s'] * 1000:7.0f} ms")
    print(f"\ntotal benchmark time {time.perf_counter() - bench_start:.0f} s; load average "
          f"at start {load_start}, at end {load_now()}")


if __name__ == "__main__":
    main()
