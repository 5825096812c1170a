"""Signing benchmark: what the archive's PAdES signature adds to the archive step.

Run: .venv/bin/python bench/signing_bench.py [--count 1000] [--warmup 5] [--json FILE]

In a temporary home: creates the archive keys (``ensure_archive_keys``), loads the signer once
(timed: a process decrypts the key once), then for each of N distinct one-page EXT documents,
in turn: (a) render (``DocumentRenderer.render_pdf``, one renderer kept warm), (b) sign
(``ArchiveSigner.sign``), (c) store the signed bytes in a ``DirectoryStore(sync=True)`` (fsync'd
write-once version).  The three steps of one document run back to back, so that all three
see the same machine load.  Every 50th document is also checked (``check_signature``, what
``verify`` does per document).  Reports ms per document for render, sign, store and check,
the sign time as a percentage of render + store (goal <= 20 %), and the bytes the signature
adds.  Prints a short summary and one JSON line.  Not a test.  Bounded: ~1.5 min for 1000.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import load_now  # noqa: E402  (bench/ is on sys.path when run)

from brokerflow.archive.directory_store import DirectoryStore  # noqa: E402
from brokerflow.archive.signing import (  # noqa: E402
    check_signature,
    ensure_archive_keys,
    load_signer,
    trust_roots,
)
from brokerflow.kernel.render import DocumentRenderer  # noqa: E402
from brokerflow.kernel.settings import Settings  # noqa: E402

PASSPHRASE = "bench-signing-passphrase-not-for-production"
CHECK_EVERY = 50


def document(i: int) -> tuple[str, dict[str, Any]]:
    serial = f"SZ01-EXT-2026-{i:06d}"
    return serial, {"branch": "SZ01", "subject": f"测试 {i}", "serial": serial,
                    "body": {"note": "x"}}


def figures(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {"mean": round(statistics.fmean(ms), 2), "median": round(statistics.median(ms), 2),
            "p95": round(ms[min(len(ms) - 1, round(0.95 * len(ms)) - 1)], 2),
            "min": round(ms[0], 2), "max": round(ms[-1], 2), "n": len(ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="documents (default 1000)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed documents first")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    load_start = load_now()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bf-signing-bench-") as tmp:
        settings = Settings(home=Path(tmp) / "home", signing_key_passphrase=PASSPHRASE,
                            signing_dir=None, dev=True)
        t0 = time.perf_counter()
        ensure_archive_keys(settings)
        keys_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        signer = load_signer(settings)
        load_ms = (time.perf_counter() - t0) * 1000
        roots = trust_roots(settings)
        store = DirectoryStore(root=Path(tmp) / "store", bucket="bench", sync=True)
        store.ensure_bucket(retention_years=20, retention_mode="GOVERNANCE")
        renderer = DocumentRenderer()
        render: list[float] = []
        sign: list[float] = []
        put: list[float] = []
        check: list[float] = []
        added: list[int] = []
        for i in range(1, args.warmup + args.count + 1):
            serial, data = document(i)
            t0 = time.perf_counter()
            pdf = renderer.render_pdf("EXT", data)
            t1 = time.perf_counter()
            signed = signer.sign(pdf, serial=serial)
            t2 = time.perf_counter()
            store.put(f"SZ01/EXT/2026/{serial}.pdf", signed,
                      metadata={"serial": serial, "type": "EXT", "branch": "SZ01"},
                      retention=None)
            t3 = time.perf_counter()
            if i <= args.warmup:
                continue
            render.append(t1 - t0)
            sign.append(t2 - t1)
            put.append(t3 - t2)
            added.append(len(signed) - len(pdf))
            if i % CHECK_EVERY == 0:
                t0 = time.perf_counter()
                verdict = check_signature(signed, trust_roots=roots)
                check.append(time.perf_counter() - t0)
                assert verdict.ok and verdict.serial == serial, verdict
        renderer.close()
    result: dict[str, Any] = {
        "bench": "signing", "count": args.count, "keys_created_ms": round(keys_ms, 1),
        "load_signer_ms": round(load_ms, 1), "render_ms": figures(render),
        "sign_ms": figures(sign), "store_ms": figures(put),
        "check_ms": figures(check) if check else None,
        "signature_bytes_mean": round(statistics.fmean(added)),
        "load_start": load_start, "load_end": load_now(),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    for kind in ("mean", "median"):
        base = result["render_ms"][kind] + result["store_ms"][kind]
        result[f"sign_pct_of_render_store_{kind}"] = round(
            100 * result["sign_ms"][kind] / base, 1)
    print(f"signing benchmark: {args.count} one-page EXT documents "
          f"(load {result['load_start']} -> {result['load_end']}, {result['wall_s']} s)")
    print(f"  keys created once {keys_ms:.1f} ms, signer loaded once {load_ms:.1f} ms")
    for label, key in (("render", "render_ms"), ("sign", "sign_ms"), ("store (fsync)", "store_ms"),
                       (f"check (every {CHECK_EVERY}th)", "check_ms")):
        f = result[key]
        if f:
            print(f"  {label:22} mean {f['mean']:7.2f}  median {f['median']:7.2f}  "
                  f"p95 {f['p95']:7.2f}  min {f['min']:7.2f} ms")
    print(f"  sign / (render + store): {result['sign_pct_of_render_store_mean']} % (means), "
          f"{result['sign_pct_of_render_store_median']} % (medians); the signature adds "
          f"{result['signature_bytes_mean']} bytes")
    line = json.dumps(result, ensure_ascii=False)
    print(line)
    if args.json:
        args.json.write_text(line + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
