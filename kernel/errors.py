"""The brokerflow exception tree, in one place.

    BrokerflowError                 base; ``exit_code`` is what the CLI exits with
    ├── BadInput                    exit 2: a file, row, column (or option) is wrong
    │   ├── MonthClosed             (payroll) the month is signed; reopen it first
    │   └── MissingGlyph            (render) a character no document font draws (names U+XXXX)
    ├── UnsafeSettings              exit 2: default secrets outside development mode
    ├── MissingCJKFont              exit 2: no Chinese font installed (names the package)
    ├── MissingPostgres             exit 2: ``up --postgres`` without PostgreSQL's server binaries
    ├── SchemaError                 exit 6: the database needs a migration start cannot make
    ├── DatabaseBusy                exit 7: another writer held the database too long; retry
    ├── DatabaseUnavailable         exit 8: the database cannot be reached (names it, says how)
    ├── AccessError                 exit 3
    │   ├── AuthenticationFailed    unknown user or wrong secret
    │   └── AccessDenied            a known user asked for something not theirs
    ├── NotFound                    exit 4: no such serial / user / object
    ├── SerialRangeExhausted        (archive) exit 1: all 999,999 numbers of a year are used
    └── StorageError                exit 5: the object store failed after bounded retries
        ├── IntegrityError          a stored object does not match its checksum
        └── SigningUnavailable      (archive) the archive cannot sign: key, cert or passphrase

Domain errors (marked with their domain) subclass this tree where their domain lives, so that
every error a user can cause reaches ``main`` with its exit code, never as a traceback.
"""

from __future__ import annotations


class BrokerflowError(Exception):
    """Base of every error brokerflow raises on purpose."""

    exit_code = 1


class BadInput(BrokerflowError):
    """Input rejected before anything was written; names where the problem is."""

    exit_code = 2

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.row = row
        self.column = column
        super().__init__(self.describe())

    def describe(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.problem}" if prefix else self.problem


class UnsafeSettings(BrokerflowError):
    """Settings that must not be used outside development (default secrets)."""

    exit_code = 2


class MissingCJKFont(BrokerflowError):
    """No Chinese font is installed: PDFs would show empty boxes."""

    exit_code = 2


class SchemaError(BrokerflowError):
    """The database's schema differs from the code's in a way start-up cannot fix."""

    exit_code = 6


class DatabaseBusy(BrokerflowError):
    """Another writer held the database longer than the busy timeout; nothing was written."""

    exit_code = 7


class DatabaseUnavailable(BrokerflowError):
    """The database could not be reached (server down, wrong password, no such database) or
    the connection was lost; the message names it (without its password) and how to fix it."""

    exit_code = 8


class MissingPostgres(BrokerflowError):
    """A local PostgreSQL cluster was asked for, but its server binaries are not installed."""

    exit_code = 2


class AccessError(BrokerflowError):
    """Identity or permission problem; always written to the access log."""

    exit_code = 3


class AuthenticationFailed(AccessError):
    """Unknown user or a secret that does not verify."""


class AccessDenied(AccessError):
    """The user is known but not entitled to the document or action."""


class NotFound(BrokerflowError):
    """No such serial, user or object."""

    exit_code = 4


class StorageError(BrokerflowError):
    """The object store could not be reached or refused the object."""

    exit_code = 5


class IntegrityError(StorageError):
    """A stored object does not match the checksum it was stored with."""


class SigningUnavailable(StorageError):
    """The archive cannot sign documents: its signing key or certificate is missing or
    unreadable, the passphrase is wrong, or the certificate is expired, not yet valid, or not
    issued by the archive root; the message names the file and the fix.  Nothing is archived
    unsigned."""
