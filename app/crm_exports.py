"""A branch's CRM export into the inputs store (``crm/<branch>/<YYYY-MM>/``), where the closing
reads it: checked first (exit 2 naming file, row, column; nothing uploaded), audited, kept
apart from the record series with its own retention (SPEC §5: inputs live apart)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from brokerflow.archive.service import Archive
from brokerflow.kernel.audit import append_audit
from brokerflow.kernel.db import new_session
from brokerflow.kernel.errors import BadInput
from brokerflow.kernel.identity import UserView
from brokerflow.payroll.compute import compute_from_directory
from brokerflow.payroll.policy import DEFAULT_POLICY
from brokerflow.payroll.state_file import read_state

EXPORT_FILES = {"staff.csv": "text/csv", "clients.csv": "text/csv",
                "staff.xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "clients.xlsx":
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "state.json": "application/json"}


def upload_export(archive: Archive, *, directory: Path, branch: str, month: str,
                  actor: UserView) -> list[str]:
    """Check the export in ``directory`` and store it as the month's input; the file names."""
    present = {name: directory / name for name in EXPORT_FILES if (directory / name).is_file()}
    for stem in ("staff", "clients"):
        if not any(name.startswith(stem + ".") for name in present):
            raise BadInput(f"no {stem}.csv (or {stem}.xlsx) in the export", file=str(directory))
    # what the closing will do with it, first: BadInput names file, row and column
    read_state(directory / "state.json")
    compute_from_directory(month=month, data_dir=directory, policy=DEFAULT_POLICY)
    digests = {}
    for name, path in sorted(present.items()):
        data = path.read_bytes()
        digests[name] = hashlib.sha256(data).hexdigest()
        archive.put_input(f"crm/{branch}/{month}/{name}", data,
                          metadata={"uploaded-by": actor.user_id, "sha256": digests[name]},
                          content_type=EXPORT_FILES[name])
    with new_session(archive.engine) as session:
        append_audit(session, actor_id=actor.user_id, action="crm-export-uploaded",
                     request_key=f"payroll:{branch}:{month}", details={"files": digests})
        session.commit()
    return sorted(present)
