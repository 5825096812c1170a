"""Flow-run leases: a running flow proves its process is alive by renewing a row.

Each approval flow holds a lease (``RunLease``) for as long as its process runs it: taken when
the flow starts, renewed by a daemon thread every third of ``run_lease_seconds``, removed when
the flow ends or suspends.  A process that is killed stops renewing; the sweep of
``brokerflow.app.recovery`` then sees the run as stranded and hands it back to be run again.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from brokerflow.kernel.calendar import utcnow
from brokerflow.kernel.db import new_session
from brokerflow.kernel.models import RunLease
from brokerflow.kernel.periodic import repeating

log = logging.getLogger(__name__)


def this_holder() -> str:
    """``host:pid`` of this process, as leases name their holder."""
    return f"{socket.gethostname()}:{os.getpid()}"


def renew_lease(engine: Engine, *, flow_run_id: str, holder: str) -> None:
    """Take or renew the lease of ``flow_run_id`` for ``holder`` (its own transaction)."""
    with new_session(engine) as session:
        lease = session.get(RunLease, flow_run_id)
        now = utcnow()
        if lease is None:
            lease = RunLease(flow_run_id=flow_run_id, holder=holder, acquired_at=now,
                             renewed_at=now)
        else:
            if lease.holder != holder:
                lease.holder, lease.acquired_at = holder, now
            lease.renewed_at = now
        session.add(lease)
        session.commit()


def release_lease(engine: Engine, *, flow_run_id: str, holder: str) -> None:
    """Remove the lease if ``holder`` still holds it."""
    with new_session(engine) as session:
        lease = session.get(RunLease, flow_run_id)
        if lease is not None and lease.holder == holder:
            session.delete(lease)
            session.commit()


@contextmanager
def held_lease(engine: Engine, flow_run_id: str, *, lease_seconds: float) -> Iterator[None]:
    """Hold the lease of ``flow_run_id`` while the block runs (nothing outside a flow run)."""
    if not flow_run_id:
        yield
        return
    holder = this_holder()
    renew_lease(engine, flow_run_id=flow_run_id, holder=holder)

    def renew() -> None:
        renew_lease(engine, flow_run_id=flow_run_id, holder=holder)

    try:
        with repeating(renew, every=max(lease_seconds / 3, 0.5), name=f"lease-{flow_run_id}",
                       tolerated=(sa_exc.SQLAlchemyError,), log=log,
                       what=f"renew the lease of flow run {flow_run_id}"):
            yield
    finally:
        try:
            release_lease(engine, flow_run_id=flow_run_id, holder=holder)
        except sa_exc.SQLAlchemyError as exc:  # it expires on its own
            log.warning("could not release the lease of flow run %s: %s", flow_run_id, exc)
