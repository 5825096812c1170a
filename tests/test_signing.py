"""The archive's PAdES signature (archive/signing.py): keys, signing, offline checks.

Real parts only: keys on disk, a PDF rendered by the document renderer, pyHanko's validator,
and poppler's ``pdfsig`` as a PDF reader would see the signature."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import copy_into_new_writer
from pyhanko.sign.validation import EmbeddedPdfSignature

from brokerflow.archive import signing
from brokerflow.archive.signing import (
    check_signable,
    check_signature,
    ensure_archive_keys,
    key_files,
    load_signer,
    rotate_signing_key,
    trust_roots,
)
from brokerflow.kernel.errors import BadInput, SigningUnavailable, UnsafeSettings
from brokerflow.kernel.render import DocumentRenderer
from brokerflow.kernel.settings import Settings

PASSPHRASE = "a-long-test-passphrase-0123456789"
SERIAL = "SZ01-EXT-2026-000001"


def settings_in(home: Path, passphrase: str = PASSPHRASE) -> Settings:
    return Settings(home=home, signing_key_passphrase=passphrase, signing_dir=None, dev=True)


@pytest.fixture(scope="module")
def pdf() -> bytes:
    """A one-page document as the archive renders it."""
    return DocumentRenderer().render_pdf("EXT", {"branch": "SZ01", "subject": "测试",
                                                 "serial": SERIAL, "body": {"note": "x"}})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    made = settings_in(tmp_path / "home")
    assert ensure_archive_keys(made) is True
    return made


@pytest.fixture
def signed(settings: Settings, pdf: bytes) -> bytes:
    return load_signer(settings).sign(pdf, serial=SERIAL)


def last_signature(data: bytes) -> EmbeddedPdfSignature:
    return PdfFileReader(BytesIO(data)).embedded_regular_signatures[-1]


# ---------------------------------------------------------------------------- keys


def test_keys_are_private_encrypted_and_chained(settings: Settings) -> None:
    files = key_files(settings)
    folder = files.root_cert.parent
    assert folder == settings.home / "archive-keys"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in (files.root_cert, files.root_key, files.signing_cert, files.signing_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for key_path in (files.root_key, files.signing_key):
        pem = key_path.read_bytes()
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises(TypeError):  # encrypted: no loading without the passphrase
            serialization.load_pem_private_key(pem, password=None)
        with pytest.raises(ValueError):
            serialization.load_pem_private_key(pem, password=b"not-the-passphrase-at-all")
        key = serialization.load_pem_private_key(pem, password=PASSPHRASE.encode())
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    root = x509.load_pem_x509_certificate(files.root_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(files.signing_cert.read_bytes())
    cn = x509.NameOID.COMMON_NAME
    assert root.subject.get_attributes_for_oid(cn)[0].value == "brokerflow archive root"
    assert cert.subject.get_attributes_for_oid(cn)[0].value == "brokerflow archive signing"
    cert.verify_directly_issued_by(root)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    assert signing.DOCUMENT_SIGNING[0] in cert.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    years = (cert.not_valid_after_utc - cert.not_valid_before_utc).days / 365.25
    root_years = (root.not_valid_after_utc - root.not_valid_before_utc).days / 365.25
    assert 9.9 < years < 10.1 and 29.9 < root_years < 30.1


def test_ensure_is_idempotent_and_never_overwrites(settings: Settings) -> None:
    files = key_files(settings)
    paths = (files.root_cert, files.root_key, files.signing_cert, files.signing_key)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in paths}
    assert ensure_archive_keys(settings) is False
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in paths} == before
    files.signing_key.unlink()  # half a pair is restored from the backup, never re-issued
    with pytest.raises(SigningUnavailable, match="signing.key is missing"):
        ensure_archive_keys(settings)


def test_an_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeSettings, match="BROKERFLOW_SIGNING_KEY_PASSPHRASE") as caught:
        ensure_archive_keys(settings_in(tmp_path / "home", passphrase=""))
    assert caught.value.exit_code == 2
    assert not (tmp_path / "home" / "archive-keys" / "root.key").exists()


# ---------------------------------------------------------------------------- sign + check


def test_sign_then_check(settings: Settings, pdf: bytes, signed: bytes) -> None:
    assert signed.startswith(pdf) and len(signed) > len(pdf)  # an incremental update
    check = check_signature(signed, trust_roots=trust_roots(settings))
    assert check.ok, check
    assert check.problem == ""
    assert check.whole_file and check.intact and check.valid and check.trusted
    assert check.serial == SERIAL
    assert check.sha256 == hashlib.sha256(pdf).hexdigest()
    assert check.signer == "brokerflow archive signing"
    embedded = last_signature(signed)
    assert embedded.field_name == "brokerflow-archive"
    assert embedded.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    assert embedded.sig_object["/Location"] == "brokerflow archive"
    signer = load_signer(settings)
    assert load_signer(settings) is signer  # the key is decrypted once
    der = x509.load_pem_x509_certificate(key_files(settings).signing_cert.read_bytes()
                                         ).public_bytes(serialization.Encoding.DER)
    assert signer.fingerprint == hashlib.sha256(der).hexdigest()
    embedded_certs = {c.chosen.dump() for c in embedded.signed_data["certificates"]}
    root_der = x509.load_pem_x509_certificate(key_files(settings).root_cert.read_bytes()
                                              ).public_bytes(serialization.Encoding.DER)
    assert {der, root_der} <= embedded_certs


def test_a_changed_byte_in_the_signed_range_is_found(settings: Settings, signed: bytes,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    start, length, start2, length2 = (int(x) for x in last_signature(signed).sig_object[
        "/ByteRange"])
    signed_range = [*range(start, start + length), *range(start2, start2 + length2)]
    positions = [100, length // 2, start2 + 2, *random.Random(7).sample(signed_range, 12)]
    for position in positions:
        altered = bytearray(signed)
        altered[position] ^= 0x01
        check = check_signature(bytes(altered), trust_roots=trust_roots(settings))
        assert not check.ok and check.problem, position
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


def test_bytes_appended_after_signing(settings: Settings, signed: bytes) -> None:
    check = check_signature(signed + b"\n%appended\n", trust_roots=trust_roots(settings))
    assert check.intact and check.valid and check.trusted
    assert not check.whole_file and not check.ok
    assert "after signing" in check.problem


def test_another_installations_signature_is_not_trusted(settings: Settings, tmp_path: Path,
                                                        pdf: bytes) -> None:
    other = settings_in(tmp_path / "other")
    ensure_archive_keys(other, organisation="brokerflow archive")  # the same names, other keys
    check = check_signature(load_signer(other).sign(pdf, serial=SERIAL),
                            trust_roots=trust_roots(settings))
    assert check.intact and check.valid and not check.trusted and not check.ok
    assert check.problem == "signed by a certificate not issued by the archive root"


@pytest.mark.parametrize("data", [
    b"", b"not a pdf at all", b"%PDF-1.7\n", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\n",
    bytes(random.Random(3).randrange(256) for _ in range(5000)),
], ids=["empty", "text", "header", "no-xref", "noise"])
def test_hostile_bytes_give_a_problem_not_an_exception(settings: Settings, data: bytes) -> None:
    check = check_signature(data, trust_roots=trust_roots(settings))
    assert not check.ok and check.problem


def test_mangled_uploads_are_refused_or_signed_never_a_traceback(settings: Settings,
                                                                 pdf: bytes) -> None:
    signer, roots, rng = load_signer(settings), trust_roots(settings), random.Random(11)
    outcomes = set()
    for _ in range(40):
        mangled = bytearray(pdf)
        for _ in range(rng.randint(1, 8)):
            mangled[rng.randrange(len(mangled))] = rng.randrange(256)
        try:
            check_signable(bytes(mangled), source="upload.pdf")
            signed = signer.sign(bytes(mangled), serial=SERIAL)
        except BadInput as exc:
            outcomes.add("refused")
            assert exc.file in ("upload.pdf", SERIAL)
            continue
        outcomes.add("signed")
        assert signed.startswith(mangled) and check_signature(signed, trust_roots=roots).ok
    assert outcomes  # whichever happened, it was one of the two


def test_truncated_and_unsigned_pdfs(settings: Settings, pdf: bytes, signed: bytes) -> None:
    roots = trust_roots(settings)
    for cut in (len(signed) // 2, len(pdf) + 40, len(signed) - 30):
        check = check_signature(signed[:cut], trust_roots=roots)
        assert not check.ok and check.problem, cut
    assert check_signature(pdf, trust_roots=roots).problem == "no signature"


def test_a_signed_archive_pdf_signed_again_checks_its_last_signature(
        settings: Settings, signed: bytes) -> None:
    again = load_signer(settings).sign(signed, serial="SZ01-EXT-2026-000002")
    check = check_signature(again, trust_roots=trust_roots(settings))
    assert check.ok and check.serial == "SZ01-EXT-2026-000002"
    assert check.sha256 == hashlib.sha256(signed).hexdigest()
    assert last_signature(again).field_name == "brokerflow-archive-2"


def test_the_longest_organisation_name_fits(tmp_path: Path, pdf: bytes) -> None:
    other = settings_in(tmp_path / "other")
    with pytest.raises(BadInput, match="1 to 56 bytes"):
        ensure_archive_keys(other, organisation="华南区深圳福田营业部电子档案签章中心" * 2)
    ensure_archive_keys(other, organisation="华南区深圳福田营业部电子档案签章中心")
    check = check_signature(load_signer(other).sign(pdf, serial=SERIAL),
                            trust_roots=trust_roots(other))
    assert check.ok and check.signer.endswith("签章中心 signing")
    rotate_signing_key(other)  # the new certificate keeps the root's organisation
    assert load_signer(other).name == "华南区深圳福田营业部电子档案签章中心 signing"


def test_signing_works_inside_a_running_event_loop(settings: Settings, pdf: bytes) -> None:
    async def archive_step() -> bytes:
        return load_signer(settings).sign(pdf, serial=SERIAL)

    assert check_signature(asyncio.run(archive_step()), trust_roots=trust_roots(settings)).ok


# ---------------------------------------------------------------------------- refusals


def test_check_signable(pdf: bytes) -> None:
    check_signable(pdf, source="upload.pdf")
    with pytest.raises(BadInput) as caught:
        check_signable(b"PK\x03\x04 a zip file", source="upload.zip")
    assert caught.value.file == "upload.zip" and caught.value.exit_code == 2
    writer = copy_into_new_writer(PdfFileReader(BytesIO(pdf)))
    writer.encrypt("owner-secret", "user-secret")
    encrypted = BytesIO()
    writer.write(encrypted)
    with pytest.raises(BadInput, match="encrypted") as caught:
        check_signable(encrypted.getvalue(), source="locked.pdf")
    assert caught.value.file == "locked.pdf"


def test_wrong_passphrase(settings: Settings) -> None:
    wrong = settings_in(settings.home, passphrase="another-long-passphrase-9876543210")
    with pytest.raises(SigningUnavailable, match="wrong BROKERFLOW_SIGNING_KEY_PASSPHRASE"):
        load_signer(wrong)
    with pytest.raises(SigningUnavailable, match="BROKERFLOW_SIGNING_KEY_PASSPHRASE is empty"):
        load_signer(settings_in(settings.home, passphrase=""))


def test_missing_key_file(settings: Settings) -> None:
    files = key_files(settings)
    files.signing_key.unlink()
    with pytest.raises(SigningUnavailable) as caught:
        load_signer(settings)
    assert str(files.signing_key) in str(caught.value)
    assert "`brokerflow up` creates" in str(caught.value)
    assert caught.value.exit_code == 5


def test_key_of_another_installation(settings: Settings, tmp_path: Path) -> None:
    other = settings_in(tmp_path / "other")
    ensure_archive_keys(other)
    files, theirs = key_files(settings), key_files(other)
    load_signer(settings)  # cached: a changed file must still be noticed
    files.signing_key.unlink()
    files.signing_key.write_bytes(theirs.signing_key.read_bytes())
    with pytest.raises(SigningUnavailable, match="does not match the certificate"):
        load_signer(settings)
    files.signing_key.unlink()
    files.signing_cert.unlink()
    files.signing_key.write_bytes(theirs.signing_key.read_bytes())
    files.signing_cert.write_bytes(theirs.signing_cert.read_bytes())
    with pytest.raises(SigningUnavailable, match="not issued by the archive root"):
        load_signer(settings)


def test_expired_signing_certificate(settings: Settings) -> None:
    files = key_files(settings)
    root = x509.load_pem_x509_certificate(files.root_cert.read_bytes())
    root_key = serialization.load_pem_private_key(files.root_key.read_bytes(),
                                                  PASSPHRASE.encode())
    key = serialization.load_pem_private_key(files.signing_key.read_bytes(), PASSPHRASE.encode())
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    past = datetime.now(UTC) - timedelta(days=4000)
    expired = (x509.CertificateBuilder().subject_name(root.subject).issuer_name(root.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(past).not_valid_after(past + timedelta(days=3650))
               .sign(root_key, hashes.SHA256()))
    files.signing_cert.unlink()
    files.signing_cert.write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(SigningUnavailable, match="not now: run `brokerflow archive keys rotate`"):
        load_signer(settings)


# ---------------------------------------------------------------------------- rotation


def test_rotation_keeps_old_documents_valid(settings: Settings, pdf: bytes,
                                            signed: bytes) -> None:
    files = key_files(settings)
    old_cert, old_key = files.signing_cert.read_bytes(), files.signing_key.read_bytes()
    old_fingerprint = load_signer(settings).fingerprint
    assert rotate_signing_key(settings) == files.signing_cert
    kept = sorted(files.signing_cert.parent.glob("signing-*"))
    assert [p.suffix for p in kept] == [".key", ".pem"]
    assert {kept[0].read_bytes(), kept[1].read_bytes()} == {old_key, old_cert}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in kept)
    new_signer = load_signer(settings)
    assert new_signer.fingerprint != old_fingerprint
    after = new_signer.sign(pdf, serial="SZ01-EXT-2026-000003")
    roots = trust_roots(settings)
    assert check_signature(signed, trust_roots=roots).ok
    assert check_signature(after, trust_roots=roots).ok
    rotate_signing_key(settings)  # twice in the same second: nothing is overwritten
    assert len(list(files.signing_cert.parent.glob("signing-*"))) == 4


# ---------------------------------------------------------------------------- a PDF reader


def test_pdfsig_sees_a_valid_signature(signed: bytes, tmp_path: Path) -> None:
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    result = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "HOME": str(tmp_path)})  # no NSS db of the user
    out = result.stdout
    assert "Signature Field Name: brokerflow-archive" in out, out + result.stderr
    assert "Signer Certificate Common Name: brokerflow archive signing" in out
    assert "Signature Validation: Signature is Valid." in out
    assert "Total document signed" in out
