"""Data files installed with brokerflow (document templates, the default policy, the sample
roster, the deployments), found through the package, never through a checkout."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_dir(package: str) -> Path:
    """The directory of an installed brokerflow package (``brokerflow.templates`` …)."""
    path = Path(str(files(package)))
    if not path.is_dir():  # an install that is not a plain directory tree
        raise RuntimeError(f"{package} is not installed as a directory ({path})")
    return path


def templates_dir() -> Path:
    """Where the document templates are (``templates/`` of the repository)."""
    return package_dir("brokerflow.templates")
