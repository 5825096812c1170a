"""check_export.py: check a brokerflow archive export without brokerflow (standard library only).

Run it in the export's directory (or pass --dir):

    python3 check_export.py [--dir DIR] [--audit-key-file FILE]

It re-hashes every file against SHA256SUMS and manifest.json, checks that every number of the
manifest's serial ranges is accounted for, follows the audit-chain slice link by link
(each prev_hash is the hash of the row before it), checks that the audit head each document
anchors is in the slice, and -- given the company's audit key in FILE -- recomputes every
row's HMAC-SHA256.  Findings recorded by the export itself (a signature that did not verify,
a stored object that differed from its index) are reported too.  Exit 0: no finding; 1: any
finding; 2: the set cannot be read.  The PDF signatures are checked with pyHanko (README.txt).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

SUMS = "SHA256SUMS"
MANIFEST = "manifest.json"
AUDIT = "audit-chain.jsonl"
SERIAL = re.compile(r"^([A-Z][A-Z0-9]{1,7}-[A-Z]{3}-\d{4})-(\d{6})$")
SUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


class Unreadable(Exception):
    """The set cannot be checked at all (a file missing or not what it should be)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_name(name: str) -> bool:
    """A relative path inside the set (no absolute path, no '..')."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def check_sums(root: Path, findings: list[str]) -> dict[str, str]:
    """Every file against SHA256SUMS, and every file of the set listed there."""
    try:
        lines = (root / SUMS).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise Unreadable(f"{SUMS}: {exc.strerror or exc}") from None
    listed: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        match = SUM_LINE.match(line)
        if not match or not safe_name(match.group(2)):
            findings.append(f"{SUMS} line {number}: not a 'sha256  file' line")
            continue
        digest, name = match.groups()
        listed[name] = digest
        path = root / name
        if not path.is_file():
            findings.append(f"{name}: listed in {SUMS} but missing")
        elif sha256_file(path) != digest:
            findings.append(f"{name}: its SHA-256 differs from {SUMS} (the file was changed)")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if name != SUMS and name not in listed:
            findings.append(f"{name}: in the set but not listed in {SUMS}")
    return listed


def check_manifest(root: Path, manifest: dict[str, Any], sums: dict[str, str],
                   findings: list[str]) -> None:
    """The manifest's file hashes and document rows against the files; numbers accounted for."""
    for name, digest in sorted(manifest.get("files", {}).items()):
        if sums.get(name) != digest:
            findings.append(f"{name}: manifest.json and {SUMS} give different SHA-256")
    numbers: dict[str, set[int]] = defaultdict(set)
    for row in manifest.get("documents", []):
        serial = str(row.get("serial", ""))
        match = SERIAL.match(serial)
        if match is None:
            findings.append(f"manifest.json: {serial!r} is not a serial number")
            continue
        numbers[match.group(1)].add(int(match.group(2)))
        name = row.get("file") or ""
        if row.get("status") == "stored" and name:
            path = root / name
            if not safe_name(name) or not path.is_file():
                findings.append(f"{serial}: its file {name} is missing")
            elif sha256_file(path) != row.get("sha256"):
                findings.append(f"{name}: its SHA-256 differs from the manifest's")
            elif path.stat().st_size != row.get("size"):
                findings.append(f"{name}: its size differs from the manifest's")
        elif row.get("status") == "void" and not row.get("void_reason"):
            findings.append(f"{serial}: void without a reason")
    for series, have in sorted(numbers.items()):
        missing = sorted(set(range(min(have), max(have) + 1)) - have)
        if missing:
            findings.append(f"{series}: numbers {missing[:10]} are not in the manifest")


def content_of(row: dict[str, Any]) -> str:
    """The exact text brokerflow hashed for an audit row (its canonical JSON)."""
    return json.dumps({key: row[key] for key in ("at", "actor", "action", "request", "details")},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def check_audit(root: Path, manifest: dict[str, Any], key: bytes | None,
                findings: list[str]) -> tuple[int, int]:
    """Links of the audit slice, the anchored heads, and (with the key) every HMAC;
    (rows read, HMACs verified)."""
    hashes: dict[int, str] = {}
    prev: dict[str, Any] | None = None
    checked = 0
    try:
        lines = (root / AUDIT).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise Unreadable(f"{AUDIT}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
            row_id, content = int(row["id"]), content_of(row)
            link, digest = str(row["prev_hash"]), str(row["hash"])
        except (ValueError, KeyError, TypeError):
            findings.append(f"{AUDIT} line {number}: not an audit row")
            prev = None
            continue
        if prev is not None and (row_id <= prev["id"] or link != prev["hash"]):
            findings.append(f"audit row {row_id}: its prev_hash is not the hash of row "
                            f"{prev['id']} before it (a row was removed, added or changed)")
        message = (link + content).encode("utf-8")
        if not row.get("keyed"):  # before the chain was keyed: plain SHA-256, no key needed
            expected: str | None = hashlib.sha256(message).hexdigest()
        elif key is not None:
            expected = hmac.new(key, message, hashlib.sha256).hexdigest()
        else:
            expected = None
        if expected is not None:
            checked += 1
            if not hmac.compare_digest(expected, digest):
                findings.append(f"audit row {row_id}: its content does not match its hash "
                                "(edited, or the wrong audit key)")
        hashes[row_id] = digest
        prev = {"id": row_id, "hash": digest}
    head = manifest.get("audit_slice", {})
    if len(lines) != head.get("rows", len(lines)):
        findings.append(f"{AUDIT}: {len(lines)} rows, the manifest says {head.get('rows')}")
    for row in manifest.get("documents", []):
        anchor = row.get("audit_head_id") or 0
        if anchor and hashes.get(anchor) != row.get("audit_head_hash"):
            findings.append(f"{row.get('serial')}: the audit head it anchors (row {anchor}) "
                            f"is not in {AUDIT} with the hash the document recorded")
    return len(lines), checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a brokerflow archive export.")
    parser.add_argument("--dir", type=Path, default=Path("."), help="the export (default: .)")
    parser.add_argument("--audit-key-file", type=Path,
                        help="a file holding the audit key (BROKERFLOW_AUDIT_KEY)")
    args = parser.parse_args(argv)
    root: Path = args.dir
    findings: list[str] = []
    try:
        key = None
        if args.audit_key_file is not None:
            key = args.audit_key_file.read_text(encoding="utf-8").strip().encode("utf-8")
            if not key:
                raise Unreadable(f"{args.audit_key_file} is empty")
        sums = check_sums(root, findings)
        try:
            manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise Unreadable(f"{MANIFEST}: {exc}") from None
        check_manifest(root, manifest, sums, findings)
        rows, verified = check_audit(root, manifest, key, findings)
    except (Unreadable, OSError) as exc:
        print(f"cannot check this set: {exc}", file=sys.stderr)
        return 2
    recorded = [str(f) for f in manifest.get("findings", [])]
    for finding in findings:
        print(f"FINDING {finding}")
    for finding in recorded:
        print(f"RECORDED {finding}")
    documents = manifest.get("documents", [])
    print(f"{len(sums)} file(s), {len(documents)} serial(s), {rows} audit row(s) "
          f"({verified} hash(es) recomputed{'' if key else '; HMACs need --audit-key-file'})")
    if findings or recorded:
        print(f"{len(findings)} finding(s); {len(recorded)} recorded by the export")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
