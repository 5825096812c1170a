"""Every input table a branch fills in, column by column (SPEC §6.2, §10): the English header,
the documented Chinese header, an example and the words accepted for enumerations.  Pure data;
the readers (``payroll.inputs``, ``kernel.roster``, the branch registry, the opening import),
``brokerflow templates`` and the README all follow it."""

from __future__ import annotations

from brokerflow.kernel.tables import Column
from brokerflow.kernel.vocabulary import LEVEL_LABELS, ROLE_LABELS

YES_NO = {"true": ("是",), "false": ("否",)}
CLIENT_TYPE_WORDS = {"individual": ("个人",), "institution": ("机构",)}
POSITION_WORDS = {"cm": ("营销经理", "客户经理"), "stationed": ("驻点经理",),
                  "regional": ("区域经理",)}
LEVEL_WORDS = {level: (label,) for level, label in LEVEL_LABELS.items()}
ROLE_WORDS = {role: (label,) for role, label in ROLE_LABELS.items()}

ROSTER = (
    Column("user_id", "工号", example="bj02_fin"),
    Column("name", "姓名", example="王芳"),
    Column("roles", "角色", example="finance_manager",
           note="one or more of the roles (English or Chinese, e.g. 财务经理), separated by ';'"),
    Column("branch", "营业部", example="BJ02", note="branch code; HQ for head office"),
    Column("team", "团队", required=False, example=""),
    Column("supervisor_id", "上级工号", required=False, example=""),
    Column("secret", "初始口令", required=False, example="",
           note="a first secret for a new user (stored only as a salted hash)"),
)

STAFF = (
    Column("month", "月份", example="2026-10"),
    Column("cm_id", "工号", example="cm01"),
    Column("name", "姓名", example="李明"),
    Column("position", "岗位", example="营销经理", choices=POSITION_WORDS),
    Column("supervisor_id", "上级工号", example=""),
    Column("site", "驻点", example=""),
    Column("hire_date", "入职日期", example="2025-03-01"),
    Column("qualified", "从业资格", example="是", choices=YES_NO),
    Column("late_count", "迟到早退次数", example="0"),
    Column("personal_leave_days", "事假天数", example="0"),
    Column("sick_leave_days", "病假天数", example="0"),
    Column("absent_half_days", "旷工半天数", example="0"),
    Column("no_event_count", "未开展营销活动次数", example="0"),
    Column("meeting_missed_count", "未召开晨会次数", example="0"),
    Column("report_late_count", "报表迟交次数", example="0"),
    Column("dress_count", "着装违规次数", example="0"),
    Column("off_post_count", "擅离岗位次数", example="0"),
    Column("complaint_count", "投诉次数", example="0"),
    Column("fines", "罚款", example="0"),
    Column("mainly_ipo_or_fund", "新增资金主要用于打新或申购基金", example="否", choices=YES_NO),
    Column("under_investigation", "被调查中", required=False, example="否", choices=YES_NO),
    Column("confirmed_malicious_accounts", "已确认恶意开户数", required=False, example="0"),
    Column("leave_date", "离职日期", required=False, example=""),
)

CLIENTS = (
    Column("month", "月份", example="2026-10"),
    Column("client_id", "资金账号", example="880001"),
    Column("client_type", "客户类型", example="个人", choices=CLIENT_TYPE_WORDS),
    Column("cm_id", "客户经理工号", example="cm01"),
    Column("open_date", "开户日期", example="2026-10-08"),
    Column("attribution_effective", "归属已生效", example="是", choices=YES_NO),
    Column("malicious", "恶意开户", example="否", choices=YES_NO),
    Column("purchases", "月度买入金额", example="12000.00"),
    Column("assets", "月末资产", example="56000.00"),
    Column("turnover", "成交金额", example="24000.00"),
    Column("gross_commission", "佣金", example="60.00"),
    Column("fund_sales_commission", "基金销售佣金", example="0"),
)

BRANCHES = (
    Column("code", "营业部代码", example="BJ02"),
    Column("name", "营业部全称", example="北京朝阳门证券营业部"),
    Column("address", "地址", required=False, example="北京市朝阳区朝阳门外大街1号"),
    Column("phone", "电话", required=False, example="010-12345678"),
)

ATTRIBUTION_IMPORT = (
    Column("client_id", "资金账号", example="880001"),
    Column("cm_id", "客户经理工号", example="cm01"),
    Column("effective_date", "生效日期", example="2024-06-01",
           note="the day the attribution became effective (before the go-live)"),
    Column("source", "依据", example="2024年纸质客户确认登记表",
           note="where the attribution is recorded (paper form, the old system ...)"),
    Column("client_name", "客户姓名", required=False, example="赵丽"),
    Column("id_number", "证件号码", required=False, example="",
           note="the client's ID number: stored only hashed, with its last 4 digits"),
)

OPENING_STATE = (
    Column("cm_id", "工号", example="cm01"),
    Column("as_of", "截至月份", example="2026-09",
           note="the last month closed before brokerflow"),
    Column("excess_carry", "超额奖励结转", required=False, example="0"),
    Column("risk_fund_balance", "风险基金余额", required=False, example="1200.00"),
    Column("title", "聘任职级", required=False, example="经理", choices=LEVEL_WORDS),
    Column("ytd_absent_half_days", "本年旷工半天数", required=False, example="0"),
    Column("ytd_personal_leave_days", "本年事假天数", required=False, example="0"),
)

#: The tables ``brokerflow templates`` writes, by file stem.
TEMPLATES: dict[str, tuple[Column, ...]] = {
    "roster": ROSTER, "branches": BRANCHES, "staff": STAFF, "clients": CLIENTS,
    "attributions": ATTRIBUTION_IMPORT, "opening_state": OPENING_STATE,
}
