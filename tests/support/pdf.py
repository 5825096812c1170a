"""What a person reads in a PDF."""

from __future__ import annotations

import subprocess
from pathlib import Path


def pdf_text(path_or_bytes: Path | bytes, tmp_path: Path) -> str:
    """What ``pdftotext`` reads from a PDF."""
    if isinstance(path_or_bytes, bytes):
        path = tmp_path / "extract.pdf"
        path.write_bytes(path_or_bytes)
    else:
        path = path_or_bytes
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout
