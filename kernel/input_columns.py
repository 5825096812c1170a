"""Every input table a branch fills in, column by column (SPEC §6.2, §10): the English header,
the documented Chinese header, an example and the words accepted for enumerations.  Pure data;
the readers (``payroll.inputs``, ``kernel.roster_file``, the branch registry, the opening import),
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
    Column("user_id", "工号", example="bj02_fin", kind="id",
           note="1-64 letters, digits, '_', '.', '-'"),
    Column("name", "姓名", example="王芳"),
    Column("roles", "角色", example="finance_manager", kind="roles",
           note="one or more roles, English or Chinese (e.g. 财务经理), separated by ';', '；' "
                "or '、'"),
    Column("branch", "营业部", example="BJ02", kind="id",
           note="branch code (2-8 upper-case letters/digits); HQ for head office"),
    Column("team", "团队", required=False, example="", note="the team of a CM or team leader"),
    Column("supervisor_id", "上级工号", required=False, example="", kind="id",
           note="the user_id of the direct supervisor, on this roster or already loaded"),
    Column("secret", "初始口令", required=False, example="",
           note="a first secret, required for a new user (stored only as a salted hash); "
                "empty keeps an existing user's secret"),
)

STAFF = (
    Column("month", "月份", example="2026-10", kind="month"),
    Column("cm_id", "工号", example="cm01", kind="id"),
    Column("name", "姓名", example="李明"),
    Column("position", "岗位", example="营销经理", choices=POSITION_WORDS, kind="choice"),
    Column("supervisor_id", "上级工号", example="", kind="id",
           note="the cm_id of the stationed or regional manager; empty for none"),
    Column("site", "驻点", example="",
           note="the site of a stationed manager's team; empty for none"),
    Column("hire_date", "入职日期", example="2025-03-01", kind="date"),
    Column("qualified", "从业资格", example="是", choices=YES_NO, kind="flag",
           note="holds the securities qualification"),
    Column("late_count", "迟到早退次数", example="0", kind="count"),
    Column("personal_leave_days", "事假天数", example="0", kind="amount"),
    Column("sick_leave_days", "病假天数", example="0", kind="amount"),
    Column("absent_half_days", "旷工半天数", example="0", kind="count"),
    Column("no_event_count", "未开展营销活动次数", example="0", kind="count"),
    Column("meeting_missed_count", "未召开晨会次数", example="0", kind="count"),
    Column("report_late_count", "报表迟交次数", example="0", kind="count"),
    Column("dress_count", "着装违规次数", example="0", kind="count"),
    Column("off_post_count", "擅离岗位次数", example="0", kind="count"),
    Column("complaint_count", "投诉次数", example="0", kind="count"),
    Column("fines", "罚款", example="0", kind="amount"),
    Column("mainly_ipo_or_fund", "新增资金主要用于打新或申购基金", example="否", choices=YES_NO,
           kind="flag"),
    Column("under_investigation", "被调查中", required=False, example="否", choices=YES_NO,
           kind="flag", note="empty or absent: 否"),
    Column("confirmed_malicious_accounts", "已确认恶意开户数", required=False, example="0",
           kind="count", note="empty or absent: 0"),
    Column("leave_date", "离职日期", required=False, example="", kind="date",
           note="the last day of a CM who left this month; empty for none"),
)

CLIENTS = (
    Column("month", "月份", example="2026-10", kind="month"),
    Column("client_id", "资金账号", example="880001", kind="id"),
    Column("client_type", "客户类型", example="个人", choices=CLIENT_TYPE_WORDS, kind="choice"),
    Column("cm_id", "客户经理工号", example="cm01", kind="id",
           note="a cm_id of the staff file"),
    Column("open_date", "开户日期", example="2026-10-08", kind="date"),
    Column("attribution_effective", "归属已生效", example="是", choices=YES_NO, kind="flag"),
    Column("malicious", "恶意开户", example="否", choices=YES_NO, kind="flag"),
    Column("purchases", "月度买入金额", example="12000.00", kind="amount"),
    Column("assets", "月末资产", example="56000.00", kind="amount"),
    Column("turnover", "成交金额", example="24000.00", kind="amount"),
    Column("gross_commission", "佣金", example="60.00", kind="amount"),
    Column("fund_sales_commission", "基金销售佣金", example="0", kind="amount"),
)

BRANCHES = (
    Column("code", "营业部代码", example="BJ02", kind="id",
           note="2-8 upper-case letters/digits"),
    Column("name", "营业部全称", example="北京朝阳门证券营业部"),
    Column("address", "地址", required=False, example="北京市朝阳区朝阳门外大街1号"),
    Column("phone", "电话", required=False, example="010-12345678"),
)

ATTRIBUTION_IMPORT = (
    Column("client_id", "资金账号", example="880001", kind="id"),
    Column("cm_id", "客户经理工号", example="cm01", kind="id"),
    Column("effective_date", "生效日期", example="2024-06-01", kind="date",
           note="the day the attribution became effective (before the go-live)"),
    Column("source", "依据", example="2024年纸质客户确认登记表",
           note="where the attribution is recorded (paper form, the old system ...)"),
    Column("client_name", "客户姓名", required=False, example="赵丽"),
    Column("id_number", "证件号码", required=False, example="", kind="id",
           note="the client's ID number: stored only hashed, with its last 4 digits"),
)

OPENING_STATE = (
    Column("cm_id", "工号", example="cm01", kind="id"),
    Column("as_of", "截至月份", example="2026-09", kind="month",
           note="the last month closed before brokerflow"),
    Column("excess_carry", "超额奖励结转", required=False, example="0", kind="amount"),
    Column("risk_fund_balance", "风险基金余额", required=False, example="1200.00",
           kind="amount"),
    Column("title", "聘任职级", required=False, example="经理", choices=LEVEL_WORDS,
           kind="choice"),
    Column("ytd_absent_half_days", "本年旷工半天数", required=False, example="0", kind="count"),
    Column("ytd_personal_leave_days", "本年事假天数", required=False, example="0",
           kind="amount"),
)

#: The tables ``brokerflow templates`` writes, by file stem.
TEMPLATES: dict[str, tuple[Column, ...]] = {
    "roster": ROSTER, "branches": BRANCHES, "staff": STAFF, "clients": CLIENTS,
    "attributions": ATTRIBUTION_IMPORT, "opening_state": OPENING_STATE,
}

#: What each table is, as templates and documentation title it.
TITLES: dict[str, str] = {
    "roster": "用户名册 (users and roles)", "branches": "营业部 (branches)",
    "staff": "员工月度数据 (staff of the month)", "clients": "客户月度数据 (clients of the month)",
    "attributions": "客户归属导入 (attributions before go-live)",
    "opening_state": "期初状态 (what each CM carries in at go-live)",
}

#: Rows two and three of each table's example (row one is the columns' examples): the
#: cells that differ from row one.
MORE_EXAMPLES: dict[str, tuple[dict[str, str], ...]] = {
    "roster": (
        {"user_id": "bj02_bm", "name": "张伟", "roles": "营业部经理"},
        {"user_id": "bj02_cm01", "name": "李明", "roles": "营销经理", "team": "T1",
         "supervisor_id": "bj02_bm"},
    ),
    "branches": (
        {"code": "SH07", "name": "上海浦东新区证券营业部", "address": "", "phone": ""},
        {"code": "SZ01", "name": "深圳福田证券营业部", "address": "深圳市福田区深南大道2号",
         "phone": "0755-87654321"},
    ),
    "staff": (
        {"cm_id": "sm01", "name": "陈静", "position": "驻点经理", "supervisor_id": "rm01",
         "site": "望京驻点", "hire_date": "2023/4/10", "late_count": "1", "fines": "50"},
        {"cm_id": "rm01", "name": "赵强", "position": "区域经理", "hire_date": "2019-07-01",
         "personal_leave_days": "0.5"},
    ),
    "clients": (
        {"client_id": "880002", "client_type": "机构", "open_date": "2026/10/12",
         "purchases": "500000.00", "assets": "1200000.00", "turnover": "800000.00",
         "gross_commission": "400.00"},
        {"client_id": "880003", "cm_id": "sm01", "open_date": "2026-09-20",
         "attribution_effective": "否", "purchases": "0", "assets": "3000.00",
         "turnover": "0", "gross_commission": "0"},
    ),
    "attributions": (
        {"client_id": "880002", "cm_id": "cm01", "effective_date": "2025/1/15",
         "client_name": "钱进", "source": "旧系统导出"},
        {"client_id": "880003", "cm_id": "sm01", "client_name": ""},
    ),
    "opening_state": (
        {"cm_id": "sm01", "risk_fund_balance": "3400.00", "title": "高级",
         "ytd_absent_half_days": "1"},
        {"cm_id": "rm01", "excess_carry": "800.00", "risk_fund_balance": "0", "title": "首席",
         "ytd_personal_leave_days": "2"},
    ),
}
