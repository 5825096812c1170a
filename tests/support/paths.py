"""Where things are: the checkout, the test data, the sample roster, the console script."""

from __future__ import annotations

import sys
from pathlib import Path

from brokerflow.kernel.resources import package_dir

REPO = Path(__file__).resolve().parent.parent.parent
DATA = REPO / "tests" / "data"
ROSTER_CSV = package_dir("brokerflow.app.sample") / "roster.csv"


def console_script() -> list[str]:
    """The ``brokerflow`` command of this environment."""
    return [str(Path(sys.executable).parent / "brokerflow")]
