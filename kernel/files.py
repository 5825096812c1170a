"""Files a command writes for its user: whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from brokerflow.kernel.errors import BadInput


def write_atomically(path: Path, data: bytes, *, column: str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, so that a
    reader never sees half of it; an unwritable path is ``BadInput`` naming ``column``."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror}", column=column) from None
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise BadInput(f"cannot write {path}: {exc.strerror}", column=column) from None
