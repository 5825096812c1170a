"""A CM's payslip (工资条, PSL; SPEC §9): the data of one stored pay line of a signed closing,
every line item with the formula it was computed by (``workings``), the flags explained and
the state carried before → after.  Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from brokerflow.kernel.vocabulary import FLAG_LABELS, LEVEL_LABELS, POSITION_LABELS

#: What each flag of a pay line means for the CM (seed 001; SPEC §4, §8.1).
FLAG_EXPLANATIONS: dict[str, str] = {
    "trainee": "入职未满见习期，按见习职级计薪，考核得分只计有效户和新开户市值两项。",
    "unqualified_reduction": "入职满规定月数仍未取得证券从业资格，提成乘以未取得资格系数。",
    "score_below_60": "本月考核得分低于60%；连续两个月低于60%将降一级（第十八条）。",
    "deemed_resigned": "本月旷工达3天或本年累计旷工达5天，视同自动离职，由人力资源部处理。",
    "personal_leave_over_limit": "本年累计事假超过20天。",
    "shortfall": "各项扣款超过应得收入，本月应发记为0，差额不结转。",
    "excess_carried": "超额市值奖励超过每月上限的部分结转下月发放。",
    "left": "本月离职，固定工资和津贴按在岗工作日折算。",
    "promotion_eligible": "连续两个月资产达到更高职级，可于下月申请晋升（第十七条）。",
    "trainee_conversion_due": "见习期已满，待办理转正。",
    "demotion_due": "连续两个月资产未达聘任职级，应降为资产对应职级（第十八条）。",
    "score_demotion_due": "连续两个月考核得分低于60%，应降一级（第十八条）。",
    "termination_right": "降级后为见习职级，营业部有权解除聘用关系（第十八条）。",
}
#: The items a payslip lists under 合计 and under 结转状态; every other is a pay item.
TOTAL_CODES = ("gross", "risk_fund_withheld", "net_pay")
CARRIED_CODES = ("excess_carry_out", "risk_fund_balance", "withheld_fixed_pay")
#: The scores a payslip works out first (they enter the pay items as inputs).
SCORE_CODES = ("mgmt_score", "score")
DEDUCTION_CODES = ("attendance_deduction", "fines", "malicious_fine", "fixed_pay_withheld")


def subject_key(branch: str, month: str, cm_id: str) -> str:
    """One payslip per CM per closing revision: ``psl:SZ01:2026-10:cm1``."""
    return f"psl:{branch}:{month}:{cm_id}"


def _grouped(text: str) -> str:
    """``12345.60`` as ``12,345.60`` (the stored two-decimal text, grouped)."""
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, _, cents = digits.partition(".")
    return f"{sign}{int(whole):,}" + (f".{cents}" if cents else "")


def payslip_data(line: dict[str, Any], *, branch: str, month: str, revision: int,
                 pas_serial: str) -> dict[str, Any]:
    """The PSL document data of one stored line (SPEC §6.3 keys, ``name``, ``workings``)."""
    workings = {w["code"]: w for w in line.get("workings", [])}
    name = str(line.get("name") or line["cm_id"])

    def row(code: str) -> dict[str, Any]:
        w = workings[code]
        label = w["label"] + ("（减项）" if code in DEDUCTION_CODES else "")
        return {"label": label, "formula": w["formula"], "text": w["text"],
                "value": _grouped(w["value"]),
                "before": "" if w["opening"] is None else _grouped(w["opening"])}

    flags = [{"code": f, "label": FLAG_LABELS.get(f, f),
              "explanation": FLAG_EXPLANATIONS.get(f, "")} for f in line.get("flags", [])]
    title = line.get("title")
    return {
        "branch": branch,
        "subject": f"{month} 工资条：{name}",
        "body": {
            "cm_id": line["cm_id"], "name": name, "month": month, "revision": revision,
            "position": POSITION_LABELS.get(str(line.get("position", "")),
                                            str(line.get("position", ""))),
            "level": LEVEL_LABELS.get(str(line["level"]), str(line["level"])),
            "title": LEVEL_LABELS.get(str(title), str(title)) if title else "（未聘任）",
            "figures": [
                ("有效户", str(line["valid_accounts"])),
                ("月度新开有效户市值（元）", _grouped(line["new_value"])),
                ("月净创收（元）", _grouped(line["net_revenue"])),
                ("近三月日均资产（元）", _grouped(line["avg_assets_3m"])),
                ("日常管理评分", str(line["mgmt_score"])),
                ("月度考核得分（考核系数）", str(line["score"])),
            ],
            "scores": [row(code) for code in SCORE_CODES if code in workings],
            "pay_items": [row(code) for code in workings
                          if code not in (*TOTAL_CODES, *CARRIED_CODES, *SCORE_CODES)],
            "totals": [row(code) for code in TOTAL_CODES if code in workings],
            "carried": [row(code) for code in CARRIED_CODES if code in workings],
            "flags": flags, "pas_serial": pas_serial,
        },
    }
