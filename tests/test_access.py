"""The reading rules of SPEC §5 as a table (pure function, no I/O)."""

from __future__ import annotations

import pytest

from brokerflow.archive.access import DocumentScope, ReadableScope, decide_read, readable_scope
from brokerflow.kernel.identity import UserView

CM = UserView("cm1", "客户经理", "SZ01", "T1", "sm1", frozenset({"cm"}))
STATIONED = UserView("sm1", "驻点经理", "SZ01", "T1", "rm1", frozenset({"stationed_manager"}))
BRANCH_MANAGER = UserView("bm1", "经理", "SZ01", "", None, frozenset({"branch_manager"}))
CLERK = UserView("cc1", "柜台", "SZ01", "", None, frozenset({"counter_clerk"}))
HQ_STAFF = UserView("ch1", "渠道管理部", "HQ", "", None, frozenset({"channel_dept"}))
OTHER_BRANCH = UserView("gzbm", "经理", "GZ02", "", None, frozenset({"branch_manager"}))

OWN = DocumentScope("SZ01", "T1", "cm1")
TEAMMATE = DocumentScope("SZ01", "T1", "cm2")
OTHER_TEAM = DocumentScope("SZ01", "T2", "cm3")
BRANCH_DOC = DocumentScope("SZ01")


@pytest.mark.parametrize(
    ("user", "doc", "subordinates", "allowed"),
    [
        (CM, OWN, frozenset(), True),
        (CM, TEAMMATE, frozenset(), False),
        (CM, BRANCH_DOC, frozenset(), False),
        (STATIONED, TEAMMATE, frozenset({"cm1", "cm2"}), True),
        (STATIONED, OTHER_TEAM, frozenset({"cm1", "cm2"}), False),
        (STATIONED, DocumentScope("SZ01", "T1", None), frozenset(), True),
        (BRANCH_MANAGER, OTHER_TEAM, frozenset(), True),
        (BRANCH_MANAGER, DocumentScope("GZ02", "G1", "gzcm"), frozenset(), False),
        (CLERK, BRANCH_DOC, frozenset(), False),
        (HQ_STAFF, DocumentScope("GZ02", "G1", "gzcm"), frozenset(), True),
        (OTHER_BRANCH, OWN, frozenset(), False),
    ],
)
def test_read_rules(user: UserView, doc: DocumentScope, subordinates: frozenset[str],
                    allowed: bool) -> None:
    decision = decide_read(user, doc, subordinates=subordinates)
    assert decision.allowed is allowed
    assert decision.reason


def _admits(scope: ReadableScope, doc: DocumentScope) -> bool:
    """What ``search_entries`` keeps for ``scope`` (the SQL, said again in Python)."""
    if scope.branch is not None and doc.branch != scope.branch:
        return False
    if scope.cm_ids is None and not scope.team:
        return True
    return bool((scope.cm_ids is not None and doc.cm_id in scope.cm_ids)
                or (scope.team and doc.team == scope.team))


@pytest.mark.parametrize("user", [CM, STATIONED, BRANCH_MANAGER, CLERK, HQ_STAFF, OTHER_BRANCH])
@pytest.mark.parametrize("subordinates", [frozenset(), frozenset({"cm1", "cm2"})])
def test_the_query_scope_never_hides_a_readable_document(
    user: UserView, subordinates: frozenset[str]
) -> None:
    docs = [OWN, TEAMMATE, OTHER_TEAM, BRANCH_DOC, DocumentScope("GZ02", "G1", "gzcm"),
            DocumentScope("SZ01", "T1", None), DocumentScope("SZ01", "", "sm1")]
    scope = readable_scope(user, subordinates=subordinates)
    readable = [d for d in docs if decide_read(user, d, subordinates=subordinates).allowed]
    assert readable or user is CLERK  # a counter clerk reads none; everyone else some
    assert all(_admits(scope, d) for d in readable)
    if user is CM:  # and it does narrow: a CM's query is their own documents of their branch
        assert [d for d in docs if _admits(scope, d)] == [OWN]
