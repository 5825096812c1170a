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


def first_page_png(pdf: Path, out: Path, *, dpi: int = 60) -> Path:
    """Page 1 of ``pdf`` as a PNG at ``out`` (``pdftoppm``): what a reader sees first."""
    stem = out.with_suffix("")
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(stem)], check=True, capture_output=True)
    return stem.with_suffix(".png")
