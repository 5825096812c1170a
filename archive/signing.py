"""The archive's own PAdES signature on every archived PDF (baseline B-B, offline, no TSA).

Keys (``brokerflow up``): a root CA and a signing certificate issued by it, EC P-256, private
keys encrypted under ``BROKERFLOW_SIGNING_KEY_PASSPHRASE``, files 0600 in a 0700 directory,
never overwritten; rotation keeps the old pair renamed.  ``ArchiveSigner.sign`` appends an
invisible signature in an incremental update whose ``/Reason`` names the serial and the
SHA-256 of the unsigned bytes.  B-B has no trusted time: ``check_signature`` judges the
certificate at the signing time the signature states, so a document stays valid after its
signing certificate expired or was rotated.  Operators: docs/archive-keys.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

from asn1crypto import cms
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.keys import load_certs_from_pemder_data
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import async_validate_pdf_signature, read_certification_data
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from brokerflow.archive.directory_store import sync_directory
from brokerflow.kernel.errors import BadInput, SigningUnavailable, UnsafeSettings
from brokerflow.kernel.settings import Settings

KEYS_DIR_NAME = "archive-keys"
FIELD_NAME = "brokerflow-archive"
PASSPHRASE_VARIABLE = "BROKERFLOW_SIGNING_KEY_PASSPHRASE"
DEFAULT_ORGANISATION = "brokerflow archive"
ROOT_YEARS, SIGNING_YEARS = 30, 10
DOCUMENT_SIGNING = (x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"),  # RFC 9336 documentSigning
                    x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.12"),  # what Adobe accepts
                    ExtendedKeyUsageOID.EMAIL_PROTECTION)  # what NSS (poppler) checks
REASON = re.compile(r"archive serial=(?P<serial>\S+) sha256=(?P<sha256>[0-9a-f]{64})")
PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
T = TypeVar("T")


def _quiet(record: logging.LogRecord) -> bool:
    """pyHanko logs each failure ``check_signature`` reports (untrusted, altered, unreadable)
    as a warning with its traceback: they become DEBUG records without one."""
    record.levelno, record.levelname, record.exc_info, record.exc_text = (
        logging.DEBUG, "DEBUG", None, None)
    return True


for _logger in ("sign.validation.generic_cms", "sign.validation.pdf_embedded",
                "sign.validation.status", "sign.diff_analysis.policies", "pdf_utils.reader",
                "pdf_utils.xref"):
    logging.getLogger(f"pyhanko.{_logger}").addFilter(_quiet)


@dataclass(frozen=True)
class KeyFiles:
    """Where one installation's archive keys live."""

    root_cert: Path
    root_key: Path  # only needed to issue signing certificates (up, rotate)
    signing_cert: Path
    signing_key: Path


def keys_dir(settings: Settings) -> Path:
    """``settings.signing_dir``, by default ``$BROKERFLOW_HOME/archive-keys``."""
    return (settings.signing_dir or settings.home / KEYS_DIR_NAME).expanduser()


def key_files(settings: Settings) -> KeyFiles:
    """The four key files of this installation (they may not exist yet)."""
    folder = keys_dir(settings)
    return KeyFiles(folder / "root.pem", folder / "root.key", folder / "signing.pem",
                    folder / "signing.key")


# ---------------------------------------------------------------------------- keys


def ensure_archive_keys(settings: Settings, *, organisation: str = DEFAULT_ORGANISATION) -> bool:
    """Create the root CA and the signing certificate when missing; True when it created
    them.  ``UnsafeSettings`` without a passphrase; ``SigningUnavailable`` when only part of
    the keys is there (completing it would orphan the documents signed before)."""
    passphrase = _passphrase(settings, unsafe=True)
    files = key_files(settings)
    with _locked(files.root_cert.parent):
        root, root_key, cert, key = (getattr(files, f.name).exists()
                                     for f in dataclasses.fields(files))
        if root and cert and key:
            return False
        if not root and (root_key or cert or key):
            raise SigningUnavailable(
                f"{files.root_cert} is missing but other archive keys are there: restore it "
                "from the backup (if no document was ever signed, remove the directory)")
        if cert != key:
            raise SigningUnavailable(f"{files.signing_key if cert else files.signing_cert} is "
                                     "missing: restore it from the backup or run `brokerflow "
                                     "archive keys rotate`")
        if not root:
            new = ec.generate_private_key(ec.SECP256R1())
            name = _name(f"{organisation} root", organisation)
            _write_new(files.root_key, _encrypted(new, passphrase))
            _write_new(files.root_cert, _certificate(name, name, new.public_key(), new,
                                                     ROOT_YEARS, ca=True).public_bytes(PEM))
        _issue_signing(files, passphrase, organisation, files.signing_cert, files.signing_key)
    return True


def rotate_signing_key(settings: Settings, *, organisation: str | None = None) -> Path:
    """Issue a new signing key and certificate under the same root (named after the root's
    organisation unless given), keeping the old pair as ``signing-<UTC time>.pem/.key``;
    returns the new certificate's path."""
    passphrase = _passphrase(settings, unsafe=True)
    files = key_files(settings)
    folder = files.signing_cert.parent
    with _locked(folder):
        stamp = base = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        n = 1
        while any(folder.glob(f"signing-{stamp}.*")):
            n += 1
            stamp = f"{base}-{n}"
        new_cert, new_key = folder / f".new-{stamp}.pem", folder / f".new-{stamp}.key"
        try:
            _issue_signing(files, passphrase, organisation, new_cert, new_key)
            for current, suffix in ((files.signing_cert, ".pem"), (files.signing_key, ".key")):
                if current.exists():
                    os.link(current, folder / f"signing-{stamp}{suffix}")  # the old one, kept
            os.replace(new_key, files.signing_key)
            os.replace(new_cert, files.signing_cert)
            sync_directory(folder)
        except OSError as exc:
            raise SigningUnavailable(f"could not rotate the signing key in {folder}: "
                                     f"{exc.strerror or exc}") from None
        finally:
            new_cert.unlink(missing_ok=True)
            new_key.unlink(missing_ok=True)
    return files.signing_cert


def trust_roots(settings: Settings) -> list[bytes]:
    """The root certificate PEM(s) of this installation (``root.pem``, then any retired
    ``root-*.pem``); ``SigningUnavailable`` when there is none."""
    root = key_files(settings).root_cert
    roots = [p.read_bytes() for p in (root, *sorted(root.parent.glob("root-*.pem")))
             if p.is_file()]
    if not roots:
        raise _missing(root)
    return roots


def _issue_signing(files: KeyFiles, passphrase: bytes, organisation: str | None,
                   cert_path: Path, key_path: Path) -> None:
    root_cert, root_key = _read_cert(files.root_cert), _read_key(files.root_key, passphrase)
    if _public(root_key) != _public(root_cert):
        raise SigningUnavailable(f"{files.root_key} does not match {files.root_cert}")
    organisation = organisation or _attribute(root_cert, NameOID.ORGANIZATION_NAME)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(_name(f"{organisation} signing", organisation), root_cert.subject,
                        key.public_key(), root_key, SIGNING_YEARS, ca=False)
    _write_new(key_path, _encrypted(key, passphrase))
    _write_new(cert_path, cert.public_bytes(PEM))


def _certificate(subject: x509.Name, issuer: x509.Name, public: Any,
                 issuer_key: ec.EllipticCurvePrivateKey, years: int, *,
                 ca: bool) -> x509.Certificate:
    now = datetime.now(UTC).replace(microsecond=0)
    usage = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                           "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                           "encipher_only", "decipher_only"), False)
    usage.update({"key_cert_sign": True, "crl_sign": True} if ca else
                 {"digital_signature": True, "content_commitment": True})
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(public).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now.replace(year=now.year + years, day=min(now.day, 28)))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
               .add_extension(x509.KeyUsage(**usage), True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_key.public_key()), False))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage(DOCUMENT_SIGNING), False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, organisation: str) -> x509.Name:
    if not organisation or len(common_name.encode()) > 64:  # as cryptography bounds a CN
        raise BadInput(f"the organisation name {organisation!r} needs 1 to 56 bytes of UTF-8 "
                       "(at most 18 Chinese characters)")
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)])


def _encrypted(key: ec.EllipticCurvePrivateKey, passphrase: bytes) -> bytes:
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(passphrase))


def _passphrase(settings: Settings, *, unsafe: bool) -> bytes:
    if not settings.signing_key_passphrase:
        message = (f"{PASSPHRASE_VARIABLE} is empty: the archive's private signing keys are "
                   "encrypted with it; set it (`brokerflow up` writes one to brokerflow.env)")
        raise UnsafeSettings(message) if unsafe else SigningUnavailable(message)
    return settings.signing_key_passphrase.encode()


def _write_new(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600) whole or not at all; never over an existing file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                       "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.link(temporary, path)  # FileExistsError rather than overwriting
        sync_directory(path.parent)
    except OSError as exc:
        raise SigningUnavailable(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """The keys directory (made 0700), held against other ``up``/``rotate`` processes."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if folder.stat().st_mode & 0o077:
            folder.chmod(0o700)
        fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SigningUnavailable(f"cannot use the keys directory {folder}: "
                                 f"{exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _missing(path: Path) -> SigningUnavailable:
    return SigningUnavailable(f"{path} is missing: `brokerflow up` creates the archive keys "
                              "(or restore them from the backup)")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as exc:
        raise SigningUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path))
    except ValueError as exc:
        raise SigningUnavailable(f"{path} is not a readable PEM certificate: {exc}") from None


def _read_key(path: Path, passphrase: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path), password=passphrase)
    except (ValueError, TypeError):
        raise SigningUnavailable(f"{path} cannot be decrypted: wrong {PASSPHRASE_VARIABLE} "
                                 "(or not an encrypted PEM private key)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningUnavailable(f"{path} is not an EC private key")
    return key


def _attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    found = cert.subject.get_attributes_for_oid(oid)
    return str(found[0].value) if found else ""


def _public(obj: Any) -> bytes:
    return bytes(obj.public_key().public_bytes(DER, SPKI))


# ---------------------------------------------------------------------------- signing


class _FastSigner(signers.SimpleSigner):
    """pyHanko's in-memory signer, minus repeated work: the decoded key is kept, and the
    signed attributes (the same for every PAdES signature but the digest) are built once."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._key = key
        self._template: tuple[bytes, bytes] | None = None

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        assert digest_algorithm == "sha256"
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    async def signed_attrs(self, data_digest: bytes, digest_algorithm: str,
                           attr_settings: Any = None, content_type: str = "data",
                           use_pades: bool = False, timestamper: Any = None,
                           dry_run: bool = False, is_pdf_sig: bool = True) -> Any:
        """pyHanko's own attributes with the digest spliced into their DER (asn1crypto takes
        ~7 ms to build them); ArchiveSigner asks for no revocation info, CAdES attributes or
        timestamp, so only the digest differs from one signature to the next."""
        if dry_run or not use_pades or timestamper or len(data_digest) != 32:
            return await super().signed_attrs(data_digest, digest_algorithm, attr_settings,
                                              content_type, use_pades, timestamper, dry_run,
                                              is_pdf_sig)
        if self._template is None:
            placeholder = hashlib.sha256(b"brokerflow signed attributes").digest()
            der = (await super().signed_attrs(placeholder, digest_algorithm, attr_settings,
                                              content_type, use_pades)).dump()
            assert der.count(placeholder) == 1
            self._template = der.partition(placeholder)[::2]
        head, tail = self._template
        return cms.CMSAttributes.load(head + data_digest + tail)


class ArchiveSigner:
    """Signs PDFs with one installation's signing key; one may be shared by threads."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate,
                 root: x509.Certificate) -> None:
        der, root_der = cert.public_bytes(DER), root.public_bytes(DER)
        self.fingerprint = hashlib.sha256(der).hexdigest()  # of the signing certificate
        self.not_valid_after = cert.not_valid_after_utc
        self.name = _attribute(cert, NameOID.COMMON_NAME)
        self.organisation = _attribute(cert, NameOID.ORGANIZATION_NAME)
        plain_key = key.private_bytes(DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        self._signer = _FastSigner(
            key, signing_cert=asn1_x509.Certificate.load(der),
            signing_key=asn1_keys.PrivateKeyInfo.load(plain_key), embed_roots=True,
            cert_registry=SimpleCertificateStore.from_certs(
                [asn1_x509.Certificate.load(root_der)]))
        # hex digits for the CMS: both certificates, the issuer's name twice more (signer
        # id, ESS attribute), ~370 bytes of attributes and signature, a margin; no estimating
        self._reserved = 2 * (768 + len(der) + len(root_der) + 2 * len(cert.issuer.public_bytes()))

    def sign(self, pdf: bytes, *, serial: str) -> bytes:
        """``pdf`` with the archive's invisible PAdES signature appended in an incremental
        update covering the whole file; ``BadInput`` for bytes that cannot be signed."""
        writer, field_name = _open_for_update(pdf, source=serial)
        meta = signers.PdfSignatureMetadata(
            field_name=field_name, md_algorithm="sha256", name=self.name,
            subfilter=fields.SigSeedSubFilter.PADES, location=self.organisation or None,
            reason=f"archive serial={serial} sha256={hashlib.sha256(pdf).hexdigest()}")
        pdf_signer, output = signers.PdfSigner(meta, self._signer), BytesIO()
        try:
            _run(lambda: pdf_signer.async_sign_pdf(writer, bytes_reserved=self._reserved,
                                                   output=output))
        except Exception as exc:  # noqa: BLE001 - a hostile PDF that opened may still fail
            raise BadInput(f"the PDF cannot be signed ({_short(exc)})", file=serial) from None
        return output.getvalue()


_signers: dict[tuple[Any, ...], ArchiveSigner] = {}
_signers_lock = threading.Lock()


def load_signer(settings: Settings) -> ArchiveSigner:
    """The installation's signer, its key decrypted once per process (again only when a key
    file or the passphrase changed); ``SigningUnavailable`` saying why it cannot sign."""
    passphrase = _passphrase(settings, unsafe=False)
    files = key_files(settings)
    stamps: list[tuple[str, int, int]] = []
    for path in (files.root_cert, files.signing_cert, files.signing_key):
        try:
            st = path.stat()
        except OSError:
            _read(path)  # raises the reason
            raise
        stamps.append((str(path), st.st_ino, st.st_mtime_ns))
    cache_key = (*stamps, hashlib.sha256(passphrase).digest())
    with _signers_lock:
        signer = _signers.get(cache_key)
        if signer is not None and signer.not_valid_after > datetime.now(UTC):
            return signer
        root, cert = _read_cert(files.root_cert), _read_cert(files.signing_cert)
        key = _read_key(files.signing_key, passphrase)
        if _public(key) != _public(cert):
            raise SigningUnavailable(f"{files.signing_key} does not match the certificate "
                                     f"{files.signing_cert}")
        if not cert.not_valid_before_utc <= datetime.now(UTC) <= cert.not_valid_after_utc:
            raise SigningUnavailable(
                f"the signing certificate {files.signing_cert} is valid from "
                f"{cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d},"
                " not now: run `brokerflow archive keys rotate`")
        try:
            cert.verify_directly_issued_by(root)
        except Exception:  # noqa: BLE001 - ValueError, TypeError or InvalidSignature alike
            raise SigningUnavailable(f"the signing certificate {files.signing_cert} is not "
                                     f"issued by the archive root {files.root_cert}") from None
        _signers.clear()  # one installation per process: keep only the newest
        _signers[cache_key] = signer = ArchiveSigner(key, cert, root)
        return signer


def check_signable(pdf: bytes, *, source: str) -> None:
    """``BadInput(file=source)`` unless pyHanko can open ``pdf`` for an incremental update
    (not a PDF, broken cross-references, encrypted, certified against any change)."""
    _open_for_update(pdf, source=source)


def _open_for_update(pdf: bytes, *, source: str) -> tuple[IncrementalPdfFileWriter, str]:
    """The writer of the signature's update and a free field name: ``brokerflow-archive``,
    or ``-2``, ``-3``... when a re-archived PDF already has it."""
    problem = ""
    try:
        writer = IncrementalPdfFileWriter(BytesIO(pdf))
        if writer.prev.encrypted:
            problem = "the PDF is encrypted: remove its password before archiving it"
        else:
            writer.root["/Pages"]  # noqa: B018 - the catalogue must have a page tree
            certified = read_certification_data(writer.prev)
            if certified is not None and certified.permission == fields.MDPPerm.NO_CHANGES:
                problem = "the PDF is certified against any change: it cannot be signed"
            taken = ({name for name, _, _ in fields.enumerate_sig_fields(writer)}
                     if "/AcroForm" in writer.root else set())
    except Exception as exc:  # noqa: BLE001 - hostile bytes raise anything
        problem = f"not a PDF that can be signed ({_short(exc)})"
    if problem:
        raise BadInput(problem, file=source)
    name, n = FIELD_NAME, 1
    while name in taken:
        n += 1
        name = f"{FIELD_NAME}-{n}"
    return writer, name


# ---------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class SignatureCheck:
    """What ``check_signature`` found about a PDF's last signature."""

    signed: bool = False
    intact: bool = False  # the signed bytes hash to what the signature signed
    valid: bool = False  # the cryptographic signature verifies
    trusted: bool = False  # the signer chains to a given root (at the stated signing time)
    whole_file: bool = False  # nothing was appended after the signature
    signer: str = ""  # common name of the signing certificate
    serial: str = ""  # parsed back out of /Reason ('' when absent)
    sha256: str = ""  # of the unsigned bytes, as /Reason states it
    problem: str = ""  # '' when ok, else one sentence

    @property
    def ok(self) -> bool:
        return self.signed and self.intact and self.valid and self.trusted and self.whole_file


def check_signature(pdf: bytes, *, trust_roots: list[bytes]) -> SignatureCheck:
    """Validate the PDF's last signature offline against ``trust_roots`` (PEM); never raises
    for hostile bytes: the check names the problem instead."""
    try:
        signatures = PdfFileReader(BytesIO(pdf), strict=False).embedded_regular_signatures
    except Exception as exc:  # noqa: BLE001 - hostile bytes raise anything
        return SignatureCheck(problem=f"not a readable PDF ({_short(exc)})")
    if not signatures:
        return SignatureCheck(problem="no signature")
    embedded = signatures[-1]
    try:
        found = REASON.search(str(embedded.sig_object.get("/Reason", "")))
        signer = embedded.signer_cert.subject.native.get("common_name", "")
        context = ValidationContext(
            trust_roots=[c for pem in trust_roots for c in load_certs_from_pemder_data(pem)],
            allow_fetching=False, revocation_mode="soft-fail",
            moment=embedded.self_reported_timestamp or datetime.now(UTC))
        status = _run(lambda: async_validate_pdf_signature(embedded, context))
    except Exception as exc:  # noqa: BLE001 - hostile bytes raise anything
        return SignatureCheck(signed=True, problem=f"the signature cannot be read "
                                                   f"({_short(exc)})")
    check = SignatureCheck(
        signed=True, intact=status.intact, valid=status.valid, trusted=status.trusted,
        whole_file=status.coverage == SignatureCoverageLevel.ENTIRE_FILE, signer=str(signer),
        serial=found["serial"] if found else "", sha256=found["sha256"] if found else "")
    return dataclasses.replace(check, problem=_problem(check, status.trust_problem_indic))


def _problem(check: SignatureCheck, indication: Any) -> str:
    if not check.intact:
        return "the document was changed after signing"
    if not check.valid:
        return "the signature does not verify"
    if not check.trusted:
        name = str(indication.standard_name) if indication else "NO_CERTIFICATE_CHAIN_FOUND"
        return ("signed by a certificate not issued by the archive root"
                if name == "NO_CERTIFICATE_CHAIN_FOUND" else
                f"the signing certificate is not trusted: {name.lower().replace('_', ' ')}")
    return "bytes were added to the document after signing" if not check.whole_file else ""


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run(coroutine: Callable[[], Awaitable[T]]) -> T:
    """Run a pyHanko coroutine to its end, also from a thread with a running event loop
    (pyHanko's sync wrappers call ``asyncio.run``, which refuses there)."""

    async def main() -> T:
        return await coroutine()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, main()).result()
    return asyncio.run(main())
