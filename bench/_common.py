"""What the benchmark scripts share: the BROKERFLOW_* wiring, the load-average reading and
the timing wrapper of their hooks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def set_env(tmp: Path, endpoint: str, *, bucket: str = "bf-bench") -> dict[str, str]:
    """Point brokerflow at a temporary home, SQLite file and ``endpoint``; returns the values."""
    values = {
        "BROKERFLOW_HOME": str(tmp / "home"),
        "BROKERFLOW_DATABASE_URL": f"sqlite:///{tmp / 'brokerflow.db'}",
        "BROKERFLOW_S3_ENDPOINT": endpoint,
        "BROKERFLOW_S3_ACCESS_KEY": "brokerflow-bench",
        "BROKERFLOW_S3_SECRET_KEY": "brokerflow-bench-secret-0123456789",
        "BROKERFLOW_S3_BUCKET": f"{bucket}-{os.getpid()}",
        "BROKERFLOW_SECRET_KEY": "bench-secret-key-not-for-production",
        "BROKERFLOW_ID_HASH_KEY": "bench-id-hash-key-not-for-production",
        "BROKERFLOW_AUDIT_KEY": "bench-audit-key-not-for-production-0123",
        "BROKERFLOW_TOTP_KEY": "bench-totp-key-not-for-production-01234",
        "BROKERFLOW_S3_RETRIES": "1",
        "BROKERFLOW_S3_TIMEOUT_SECONDS": "10",
    }
    os.environ.update(values)
    for key in ("BROKERFLOW_USER", "BROKERFLOW_SECRET", "BROKERFLOW_DEV"):
        os.environ.pop(key, None)
    return values


def load_now(separator: str = "/") -> str:
    """1/5/15-minute load averages (other work on the machine skews the figures)."""
    return separator.join(f"{x:.2f}" for x in os.getloadavg())


def timed(label: str | Callable[..., str], original: Callable[..., Any],
          record: Callable[[str, float, float], None]) -> Callable[..., Any]:
    """``original`` wrapped so that each call reports ``record(name, start, end)``.

    ``label`` is the name, or a function of the call's arguments giving it.
    """
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            name = label(*args, **kwargs) if callable(label) else label
            record(name, t0, time.perf_counter())

    return wrapper
