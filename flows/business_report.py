"""The monthly business report (营业部业务月报, seed 002 第六条, 第二十二条; SPEC §8.3) as a
step of the closing.  (Skeleton: filled in by the business-report work.)"""

from __future__ import annotations

from brokerflow.archive.service import Archive
from brokerflow.kernel.models import PayrollRun


def archive_business_reports(archive: Archive, run: PayrollRun, *, pas_serial: str) -> list[str]:
    """Archive the month's RPT (and the half-year/year report when the month ends one);
    returns their serials."""
    return []
