"""The product's words in one place: codes as they are stored and sent, with the Chinese a
person reads.  Pure (no I/O).

The enums are ``StrEnum``: a member equals its code, so rows, JSON and forms keep plain text.
"""

from __future__ import annotations

from enum import StrEnum

from brokerflow.kernel.errors import BadInput


class DecisionKind(StrEnum):
    """What a signer decides on a step (任何审核人可同意、不同意或退回)."""

    APPROVE = "approve"
    REJECT = "reject"  # ends the chain
    RETURN = "return"  # back to the submitter for a revision


DECISION_LABELS: dict[str, str] = {
    DecisionKind.APPROVE: "同意", DecisionKind.REJECT: "不同意", DecisionKind.RETURN: "退回修改",
}


class Outcome(StrEnum):
    """How a chain ended."""

    APPROVED = "approved"
    REJECTED = "rejected"
    RETURNED = "returned"


OUTCOME_LABELS: dict[str, str] = {
    Outcome.APPROVED: "同意（流程结束）", Outcome.REJECTED: "不同意（流程结束）",
    Outcome.RETURNED: "退回修改",
}
OUTCOME_FOR_DECISION: dict[str, Outcome] = {
    DecisionKind.REJECT: Outcome.REJECTED, DecisionKind.RETURN: Outcome.RETURNED,
}


class FilingStatus(StrEnum):
    WAITING = "waiting"
    RETURNED = "returned"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class AttributionStatus(StrEnum):
    PENDING = "pending"
    CONFLICT = "conflict"
    EFFECTIVE = "effective"
    ENDED = "ended"
    REJECTED = "rejected"
    RETURNED = "returned"


class ClosingStatus(StrEnum):
    """A monthly closing (one revision of a branch's month)."""

    DRAFT = "draft"
    SIGNING = "signing"
    CLOSED = "closed"
    REJECTED = "rejected"
    RETURNED = "returned"
    SUPERSEDED = "superseded"
    REOPENED = "reopened"


class LevelChangeStatus(StrEnum):
    """A level change (职级变动, SPEC §8.3)."""

    PROPOSED = "proposed"  # a demotion the closing proposed; the branch manager starts it
    WAITING = "waiting"  # an application whose flow has not taken it up yet
    SIGNING = "signing"
    APPROVED = "approved"
    REJECTED = "rejected"
    RETURNED = "returned"


#: Kinds of level change and what documents call them.
LEVEL_CHANGE_KINDS: dict[str, str] = {
    "promotion": "晋升", "exceptional_promotion": "破格晋升", "conversion": "见习转正",
    "demotion": "降级",
}


class SerialStatus(StrEnum):
    RESERVED = "reserved"  # allocated, document not yet stored
    STORED = "stored"  # object stored, checksum confirmed, indexed
    VOID = "void"  # the document failed to store; the number is never reused


class DocumentStatus(StrEnum):
    CURRENT = "current"
    SUPERSEDED = "superseded"


STATUS_LABELS: dict[str, str] = {
    "waiting": "待签批", "returned": "已退回", "approved": "已同意", "rejected": "未同意",
    "withdrawn": "已撤回", "pending": "待确认", "conflict": "归属冲突", "effective": "已生效",
    "ended": "已终止", "draft": "草稿", "signing": "签批中", "closed": "已结账",
    "superseded": "已被替代", "reopened": "已重开", "reserved": "已预留", "stored": "已归档",
    "void": "作废", "current": "现行", "proposed": "已提出", "collecting": "收集评价表中",
    "computing": "计算中", "archived": "已归档",
}


class Level(StrEnum):
    """职级, lowest first."""

    TRAINEE = "trainee"
    ASSISTANT = "assistant"
    MANAGER = "manager"
    SENIOR = "senior"
    CHIEF = "chief"


LEVEL_LABELS: dict[str, str] = {
    Level.TRAINEE: "见习", Level.ASSISTANT: "助理", Level.MANAGER: "经理",
    Level.SENIOR: "高级", Level.CHIEF: "首席",
}
LEVEL_ORDER: tuple[str, ...] = tuple(Level)


def level_rank(level: str) -> int:
    """The level's place in trainee < assistant < manager < senior < chief."""
    return LEVEL_ORDER.index(level)


#: Flags of a pay line (payroll/rules.py and the §8.1 level outlook, payroll/lifecycle.py), as
#: PAY, PAS and LVL show them.
FLAG_LABELS: dict[str, str] = {
    "trainee": "见习期", "score_below_60": "考核得分低于60", "left": "本月离职",
    "unqualified_reduction": "未取得从业资格，提成减发", "excess_carried": "超额奖励结转下月",
    "deemed_resigned": "旷工视为自动离职", "personal_leave_over_limit": "事假超过年度上限",
    "shortfall": "应发不足（记为0）", "promotion_eligible": "可申请晋升",
    "trainee_conversion_due": "见习期满待转正", "demotion_due": "资产未达聘任职级，应降级",
    "score_demotion_due": "连续两月考核低于60，应降级",
    "termination_right": "营业部有权解除聘用关系",
}


class Position(StrEnum):
    CM = "cm"
    STATIONED = "stationed"
    REGIONAL = "regional"


POSITION_LABELS: dict[str, str] = {
    Position.CM: "营销经理", Position.STATIONED: "驻点经理", Position.REGIONAL: "区域经理",
}

#: Roster roles (SPEC §1) and what they are called.
ROLE_LABELS: dict[str, str] = {
    "cm": "营销经理", "stationed_manager": "驻点经理", "regional_manager": "区域经理",
    "regional_assistant": "区域经理助理", "project_director": "项目总监",
    "backoffice": "后勤支持岗", "counter_clerk": "柜台人员", "trading_manager": "交易部经理",
    "finance_manager": "财务经理", "chief_accountant": "主办会计",
    "deputy_manager": "副经理/经理助理", "branch_manager": "营业部经理",
    "brokerage_office": "经纪业务综合室", "channel_dept": "渠道管理部", "vp": "主管副总裁",
    "admin": "系统管理员", "marketing": "市场营销部",
}

#: Head-office departments that may be named to countersign (会签部门).
DEPARTMENT_LABELS: dict[str, str] = {
    "compliance": "合规管理部", "finance": "计划财务部", "hr": "人力资源部",
    "risk": "风险管理部", "legal": "法律事务部", "audit": "稽核审计部",
    "it": "信息技术部", "operations": "运营管理部",
}
COUNTERSIGN_DEPARTMENTS = frozenset(DEPARTMENT_LABELS)

#: Document type codes (SPEC §6.1) and their Chinese titles.
DOCUMENT_TYPES: dict[str, str] = {
    "FIL": "请示报批单",
    "FOP": "会签意见回复单",
    "CNF": "客户确认登记表",
    "CML": "客户确认月度清单",
    "PAY": "营业部客户经理薪酬月报表",
    "PAS": "营业部客户经理薪酬月报表（签批）",
    "RPT": "营业部月度业务报表",
    "EXT": "外部文件归档封面",
    "LVL": "职级变动通知",
    "EVL": "季度考评结果",
    "RFD": "风险基金扣除/退还审批单",
    "PSL": "工资条",
}


class EvaluationStatus(StrEnum):
    """A branch's quarterly evaluation (季度考评, SPEC §8.2)."""

    COLLECTING = "collecting"  # the forms are open
    COMPUTING = "computing"  # closed (all in, or the deadline passed); EVL not archived yet
    ARCHIVED = "archived"  # EVL archived, consequences started


#: Evaluator groups (seed 004) and the flags of a result, as documents show them.
EVALUATION_GROUP_LABELS: dict[str, str] = {
    "peer": "区域内客户经理互评", "regional": "区域经理", "marketing": "市场营销部",
    "sales": "销售类客户经理", "gm": "营业部总经理",
}
EVALUATION_FLAG_LABELS: dict[str, str] = {
    "below_60": "低于60分（待岗培训）", "convert_to_cm": "转为销售类客户经理（待营业部经理确认）",
    "group_missing": "有评价组未评", "star": "明星客户经理",
}


#: The label filters of the document templates: filter name → code → what a person reads.
LABEL_FILTERS: dict[str, dict[str, str]] = {
    "level_label": LEVEL_LABELS,
    "position_label": {**ROLE_LABELS, **POSITION_LABELS, "regional_assistant": "区域经理助理"},
    "flag_label": {**EVALUATION_FLAG_LABELS, **FLAG_LABELS},
    "status_label": STATUS_LABELS,
    "role_label": ROLE_LABELS,
    "department_label": DEPARTMENT_LABELS,
    "level_change_label": LEVEL_CHANGE_KINDS,
    "policy_note_label": {"policy not approved": "薪酬办法未经批准（由系统管理员指定）"},
}


def label_of(labels: dict[str, str], code: object) -> str:
    """What a person reads for ``code``: its label, the code itself when it has none (an
    older code, free text), empty for none."""
    if code is None:
        return ""
    text = str(code)
    return labels.get(text, text)


def check_doc_type(doc_type: str, *, column: str = "--type") -> str:
    """``doc_type`` when it is a known document type code; BadInput naming ``column`` else."""
    if doc_type not in DOCUMENT_TYPES:
        raise BadInput(
            f"unknown document type {doc_type!r}; one of {', '.join(DOCUMENT_TYPES)}",
            column=column,
        )
    return doc_type
