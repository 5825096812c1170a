"""``brokerflow serve``: serve every deployment declared in ``prefect.yaml`` from this process.

Runs of the served deployments execute here (one subprocess per run); suspended runs hold no
process and are picked up again when resumed, also after this process was restarted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from brokerflow.errors import BadInput

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"


def declared_deployments(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    """The ``deployments`` entries of prefect.yaml, checked for the keys serving needs."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = data.get("deployments") or []
    for number, entry in enumerate(entries, start=1):
        for key in ("name", "entrypoint"):
            if not entry.get(key):
                raise BadInput(f"deployment {number} lacks {key}", file=str(path), column=key)
    return list(entries)


def build_deployments(path: Path = PREFECT_YAML) -> list[Any]:
    from prefect.flows import load_flow_from_entrypoint
    from prefect.schedules import Cron

    deployments = []
    root = path.parent
    for entry in declared_deployments(path):
        file, _, func = entry["entrypoint"].partition(":")
        flow: Any = load_flow_from_entrypoint(f"{root / file}:{func}")
        schedules = [Cron(s["cron"], timezone=s.get("timezone", "UTC"))
                     for s in entry.get("schedules") or [] if s.get("cron")]
        deployments.append(flow.to_deployment(
            name=entry["name"], description=entry.get("description"),
            parameters=entry.get("parameters") or {}, schedules=schedules or None,
        ))
    return deployments


def serve_declared(path: Path = PREFECT_YAML) -> None:
    """Register the deployments with the Prefect API and run their flow runs (blocks)."""
    from prefect import serve

    serve(*build_deployments(path), print_starting_message=True)  # type: ignore[arg-type]
