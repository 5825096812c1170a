"""Documents at volume (issue 12): one document per render against the batched path.

Run: .venv/bin/python bench/documents_bench.py [--docs 1000] [--round 100] [--one-pass 100]

The same documents go through both paths, in the same run:
  * CML, one per CM: a CM with 10-30 clients (seeded), Chinese names -- common and rare
    characters (堃, 昇, 珺, 玥, 喆 ...) -- masked ID numbers, times and asset sizes; from
    22 clients on a list takes two pages;
  * PAY with 1-4 lines, as the one-page per-CM document a payslip (PSL) will be: there is
    no PSL template yet (templates/PSL.html is used instead once it exists).
"one per render": ``DocumentRenderer.render_pdf`` for each document, in this process (what
``archive_step`` does per document).  "batched": ``DocumentRenderer.render_pdfs`` of a
round of documents (what ``Archive.archive_rendered_batch`` hands over per group): this
process and ``usable_cpus() - 1`` worker processes.  Rounds of ``--round`` documents
alternate between the two paths (which goes first alternates too), so that both see the
same load on a shared machine; the batched figures include the workers' cold start.
Reference only: ``--one-pass`` documents rendered in one WeasyPrint layout pass (page
breaks between documents) and split per page with ``Document.copy``.
Both run in a process that has loaded what a closing's flow run holds (Prefect, the flows;
``--bare``: not).  Checks: every batched PDF is byte for byte the PDF render_pdf makes of
the same document; a sample is read back with pdftotext for its serial and a Chinese name.

Not a test: prints figures only.  About 6-10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import load_now  # noqa: E402  (bench/ is on sys.path when run)

from brokerflow.kernel.render import (  # noqa: E402
    DEFAULT_TEMPLATES_DIR,
    DocumentRenderer,
    usable_cpus,
)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文欧阳司马诸葛"  # noqa: E501
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰涛明超秀兰霞平刚桂英华玉萍红娥建国志文斌波辉宇浩然子轩欣怡梓涵雨桐佳琪思远博文晨曦堃昇珺玥喆翀赟彧昕煜淼犇"  # noqa: E501
LEVELS = ["助理", "经理", "高级", "首席", "见习"]
Document = tuple[str, dict[str, Any]]


def name(rnd: random.Random) -> str:
    return rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN) for _ in range(rnd.choice((1, 2))))


def cml_document(i: int, rnd: random.Random) -> Document:
    cm_name = name(rnd)
    clients = [{
        "name": name(rnd), "masked_id": f"**************{rnd.randrange(1000):03d}"
                                      f"{rnd.choice('0123456789X')}",
        "effective_at": f"2026-10-{rnd.randrange(1, 32):02d} {rnd.randrange(9, 18):02d}:"
                        f"{rnd.randrange(60):02d}",
        "asset_size": f"{rnd.randrange(10_000, 8_000_000)}.{rnd.randrange(100):02d}",
    } for _ in range(rnd.randrange(10, 31))]
    return "CML", {
        "branch": "SZ01", "branch_name": "深圳福田营业部", "date": "2026-11-01",
        "serial": f"SZ01-CML-2026-{i + 1:06d}", "subject": f"2026-10 客户确认清单：{cm_name}",
        "body": {"cm_id": f"cm{i + 1}", "cm_name": cm_name, "month": "2026-10",
                 "clients": clients},
    }


def pay_document(i: int, rnd: random.Random, doc_type: str) -> Document:
    lines = []
    for n in range(rnd.randrange(1, 5)):
        fixed, commission = rnd.choice((4000, 4500, 5000, 6000)), rnd.randrange(500, 30000)
        gross = fixed + commission
        risk = round(commission * 0.05, 2)
        lines.append({
            "cm_id": f"cm{i + n + 1}", "name": name(rnd), "level": rnd.choice(LEVELS),
            "valid_accounts": rnd.randrange(5, 60), "score": rnd.randrange(55, 100),
            "fixed_pay": f"{fixed:.2f}", "commission": f"{commission:.2f}",
            "gross": f"{gross:.2f}", "risk_fund_withheld": f"{risk:.2f}",
            "net_pay": f"{gross - risk:.2f}", "flags": ["trainee"] if n == 3 else []})
    totals = {k: f"{sum(float(line[k]) for line in lines):.2f}"
              for k in ("gross", "risk_fund_withheld", "net_pay")}
    return doc_type, {
        "branch": "SZ01", "branch_name": "深圳福田营业部", "date": "2026-11-05",
        "serial": f"SZ01-{doc_type}-2026-{i + 1:06d}",
        "subject": f"2026年10月客户经理薪酬：{lines[0]['name']}",
        "body": {"month": "2026-10", "lines": lines, "totals": totals},
        "signatures": [{"role": "主办会计", "name": "郑丽", "decision": "approve",
                        "time": "2026-11-05 09:00", "opinion": ""}],
    }


def children_cpu(renderer: DocumentRenderer) -> float:
    """User + system CPU seconds of the renderer's live worker processes (Linux /proc)."""
    pool = renderer._pool
    if pool is None:
        return 0.0
    total = 0.0
    for pid in list(getattr(pool, "_processes", {}) or {}):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def one_pass(renderer: DocumentRenderer, documents: list[Document]) -> list[bytes]:
    """Reference: all documents in one WeasyPrint layout pass, split per page."""
    from weasyprint import HTML

    htmls = [renderer.render_html(t, d) for t, d in documents]
    head = htmls[0][:htmls[0].index("<body>")]
    bodies = [h[h.index("<body>") + 6:h.rindex("</body>")] for h in htmls]
    html = head + "<body>" + "".join(f'<div style="break-before: page">{b}</div>'
                                     for b in bodies) + "</body></html>"
    document = HTML(string=html, base_url=str(DEFAULT_TEMPLATES_DIR)).render(
        font_config=renderer.font_config)
    return [document.copy([page]).write_pdf() for page in document.pages]


def pdf_text(pdf: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(pdf)
        f.flush()
        return subprocess.run(["pdftotext", "-layout", f.name, "-"], capture_output=True,
                              text=True, check=True).stdout


def pdf_pages(pdf: bytes) -> int:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(pdf)
        f.flush()
        out = subprocess.run(["pdfinfo", f.name], capture_output=True, text=True,
                             check=True).stdout
    return int(next(ln.split()[-1] for ln in out.splitlines() if ln.startswith("Pages:")))


def compare(label: str, renderer: DocumentRenderer, documents: list[Document],
            round_size: int) -> dict[str, Any]:
    """Both paths over ``documents`` in alternating rounds; figures and checks."""
    single_s = batched_s = single_cpu = batched_cpu = 0.0
    single_pdfs: list[bytes] = []
    batched_pdfs: list[bytes] = []
    rounds: list[tuple[float, float]] = []
    load_before = load_now()
    for n, start in enumerate(range(0, len(documents), round_size)):
        chunk = documents[start:start + round_size]

        def one_per_render(chunk: list[Document] = chunk) -> list[bytes]:
            return [renderer.render_pdf(t, d) for t, d in chunk]

        def batched(chunk: list[Document] = chunk) -> list[bytes]:
            return renderer.render_pdfs(chunk)

        order: list[tuple[str, Callable[[], list[bytes]]]] = [
            ("single", one_per_render), ("batched", batched)]
        timing: dict[str, float] = {}
        for mode, fn in order if n % 2 == 0 else order[::-1]:
            cpu0, kids0 = time.process_time(), children_cpu(renderer)
            t0 = time.perf_counter()
            pdfs = fn()
            timing[mode] = time.perf_counter() - t0
            cpu = time.process_time() - cpu0 + children_cpu(renderer) - kids0
            if mode == "single":
                single_s += timing[mode]
                single_cpu += cpu
                single_pdfs += pdfs
            else:
                batched_s += timing[mode]
                batched_cpu += cpu
                batched_pdfs += pdfs
        rounds.append((timing["single"], timing["batched"]))
        print(f"  {label} round {n + 1}: one per render {timing['single']:.1f} s, "
              f"batched {timing['batched']:.1f} s, load {load_now()}", flush=True)
    identical = sum(a == b for a, b in zip(single_pdfs, batched_pdfs, strict=True))
    sample = batched_pdfs[::max(1, len(batched_pdfs) // 20)]
    sample_docs = documents[::max(1, len(batched_pdfs) // 20)]
    readable = sum(d["serial"] in (text := pdf_text(pdf)) and d["subject"].split("：")[-1]
                   in text.replace(" ", "") for (_, d), pdf in zip(sample_docs, sample,
                                                                    strict=True))
    pages = [pdf_pages(pdf) for pdf in sample]
    return {
        "documents": len(documents), "single_s": single_s, "batched_s": batched_s,
        "single_cpu": single_cpu, "batched_cpu": batched_cpu,
        "single_docs_per_s": len(documents) / single_s,
        "batched_docs_per_s": len(documents) / batched_s,
        "speedup": single_s / batched_s,
        "speedup_first_round": rounds[0][0] / rounds[0][1],
        "speedup_median_round": statistics.median(s / b for s, b in rounds),
        "identical": identical, "distinct_sha256": len({hashlib.sha256(p).hexdigest()
                                                        for p in batched_pdfs}),
        "sample": len(sample), "sample_readable": readable,
        "sample_pages": {p: pages.count(p) for p in sorted(set(pages))},
        "mean_kb": statistics.fmean(len(p) for p in batched_pdfs) / 1024,
        "load": f"{load_before} -> {load_now()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--round", type=int, default=100)
    parser.add_argument("--one-pass", type=int, default=100)
    parser.add_argument("--bare", action="store_true",
                        help="do not load what a closing's process holds (Prefect, flows)")
    args = parser.parse_args()
    if not args.bare:  # both paths then run where they run in production: a flow run
        import brokerflow.flows.closing  # noqa: F401

    import weasyprint

    cpu_model = next((ln.split(":", 1)[1].strip() for ln in
                      Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), platform.processor())
    print(f"{cpu_model}; nproc {os.cpu_count()}, usable {usable_cpus()}; Python "
          f"{platform.python_version()}; WeasyPrint {weasyprint.__version__}; "
          f"load {load_now()}; {'bare' if args.bare else 'flow modules loaded'}", flush=True)
    rnd = random.Random(20261124)
    second = "PSL" if (DEFAULT_TEMPLATES_DIR / "PSL.html").exists() else "PAY"
    sets = {
        "CML": [cml_document(i, rnd) for i in range(args.docs)],
        f"{second} (1-4 lines)": [pay_document(i, rnd, second) for i in range(args.docs)],
    }
    renderer = DocumentRenderer()
    for doc_type, data in (docs[0] for docs in sets.values()):
        renderer.render_pdf(doc_type, data)  # warm: fonts loaded before timing
    results = {}
    try:
        for label, documents in sets.items():
            results[label] = compare(label, renderer, documents, args.round)
        if args.one_pass:
            docs = [d for d in sets["CML"][:args.one_pass * 3]
                    if len(d[1]["body"]["clients"]) <= 20][:args.one_pass]  # one page each
            t0 = time.perf_counter()
            for t, d in docs:
                renderer.render_pdf(t, d)
            single = time.perf_counter() - t0
            t0 = time.perf_counter()
            split = one_pass(renderer, docs)
            together = time.perf_counter() - t0
            assert len(split) == len(docs)
            results["one-pass reference"] = {
                "documents": len(docs), "single_s": single, "one_pass_s": together,
                "speedup": single / together}
    finally:
        renderer.close()
    print()
    for label, r in results.items():
        print(f"{label}:")
        for key, value in r.items():
            print(f"  {key}: {value:.2f}" if isinstance(value, float) else
                  f"  {key}: {value}")


if __name__ == "__main__":
    main()
