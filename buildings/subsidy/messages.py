"""Words of the subsidy engine (and of its measured-savings check) as message keys with parameters, in Chinese
and English.

Evidence sentences, the to-do items of a missing condition and the reasons of the district ranking are ``Msg``
values: a key of ``TEXT`` and its parameters as plain data, so they travel through the API as JSON and the
dashboard renders them in the reader's language (``dashboard.i18n`` merges ``TEXT`` into its catalogue and
formats each parameter for the locale). ``str(msg)`` is the plain English sentence for the CLI and logs.

A placeholder's format spec says what the value is, so both renderers format it the same way:
``date``, ``num0`` / ``num1``, ``pct``, ``money``, ``area`` (m²), ``kwh``, ``yn`` (a yes/no), ``list``,
``term=KIND`` (an enumeration shown through the catalogue key ``KIND.value``, e.g. ``term=use`` for
``use.hotel``), ``fact`` (a condition field's name) and ``fv`` (a value of the field named by the ``field``
parameter, formatted as that field is, see ``FIELD_FORMAT``).
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# key -> (Chinese, English)
TEXT: dict[str, tuple[str, str]] = {
    # evidence of a fact
    "ev.no_data": ("暂无数据", "no data"),
    "ev.text": ("{text}", "{text}"),
    "ev.policy_valid": ("政策有效期 {start:date} 至 {end:date}，评估日 {as_of:date}",
                        "policy valid {start:date} to {end:date}, evaluated on {as_of:date}"),
    "ev.policy_valid_open": ("政策自 {start:date} 起长期有效，评估日 {as_of:date}",
                             "policy valid from {start:date}, open-ended, evaluated on {as_of:date}"),
    "ev.jurisdiction_country": ("楼宇所在国家 {country}，政策适用国家 {code}",
                                "building country {country} vs policy {code}"),
    "ev.no_district_code": ("楼宇没有行政区划代码", "no district code"),
    "ev.jurisdiction_district": ("行政区划代码 {code}，政策适用范围：{level:term=level} {jcode}（前缀 {prefix}）",
                                 "district code {code} vs {level:term=level} {jcode} (prefix {prefix})"),
    "ev.building_record": ("楼宇档案：{building}", "records: building {building}"),
    "ev.use_public": ("楼宇档案：{building}，用途为{use:term=use}，属公共建筑",
                      "records: building {building}: use {use:term=use} is a public (non-residential) building"),
    "ev.building_age": ("楼宇档案：{building}，建于 {year} 年，评估日 {as_of:date}",
                        "records: building {building}: built {year}, on {as_of:date}"),
    "ev.key_city": ("行政区划代码 {code}，重点城市代码前缀 {prefixes:list}",
                    "district code {code} vs key-city prefixes {prefixes:list}"),
    "ev.site_submetering": ("站点文件：带分项的电能表测点", "site file: meter points with a sub-item"),
    "ev.platform_date": ("改造计划档案：接入监测平台日期", "programme record: platform connection date"),
    "ev.programme_record": ("改造计划档案", "programme record"),
    "ev.months_reporting": ("自 {since:date} 至 {as_of:date} 向监测平台上传数据（改造计划档案）",
                            "platform upload since {since:date} to {as_of:date} (programme record)"),
    "ev.ownership": ("{building} 的产权份额：{rows} 条记录，{owners} 位业主（阈值见政策数据）",
                     "ownership shares of {building}: {rows} rows, {owners} owners (thresholds: policy data)"),
    "ev.owner": ("业主档案：{owner}", "owner {owner}"),
    "ev.project": ("项目档案：{project}", "project {project}"),
    "ev.project_target": ("项目 {project}：计划目标", "project {project}: planned target"),
    "ev.project_measures": ("项目 {project}：改造措施", "project {project}: measures"),
    "ev.project_other_funding": ("项目 {project}：已申报的其他资金", "project {project}: other funding declared"),
    "ev.vote_required": ("{owners} 位业主，涉及共有部分施工：{common:yn}",
                         "{owners} owner(s), works on common parts: {common:yn}"),
    "ev.votes": ("已登记 {n} 张表决票，会议日期 {date:date}：通过 {approved:yn}，同意面积占比 {area:pct}，"
                 "同意人数占比 {head:pct}",
                 "{n} recorded votes, meeting {date:date}: approved {approved:yn}, {area:pct} of the area and "
                 "{head:pct} of the owners agreed"),
    "ev.construction": ("项目 {project}：施工里程碑", "project {project}: construction milestones"),
    "ev.first_application": ("首次申报 {applied:date}，开工 {works:date}",
                             "first application {applied:date}, works {works:date}"),
    "ev.first_application_no_works": ("首次申报 {applied:date}，尚未开工",
                                      "first application {applied:date}, works not started"),
    "ev.savings": ("IPMVP 方法 C（{model} 模型），基准期 {b0:date} 至 {b1:date}，报告期 {r0:date} 至 {r1:date}，"
                   "CV(RMSE) {cv:pct}，FSU68 {fsu:pct}，来源：{source}",
                   "IPMVP C {model} model, baseline {b0:date}..{b1:date}, reporting {r0:date}..{r1:date}, "
                   "CV(RMSE) {cv:pct}, FSU68 {fsu:pct}, source {source}"),
    # what must happen next (a missing condition, as a to-do)
    "todo.months_reporting": ("向监测平台上传至少 {need:num0} 个月的电表数据（目前 {has:num1} 个月）",
                              "upload at least {need:num0} months of meter data to the platform (now {has:num1})"),
    "todo.months_reporting_none": ("向监测平台上传至少 {need:num0} 个月的电表数据（目前还没有）",
                                   "upload at least {need:num0} months of meter data to the platform (none yet)"),
    "todo.platform_connect": ("将楼宇电表接入市级能耗监测平台",
                              "connect the building's meters to the monitoring platform"),
    "todo.submetering": ("安装分项计量电表", "install sub-item energy meters"),
    "todo.unified_operator": ("委托统一运营主体并登记", "appoint a unified operator and record it"),
    "todo.retrofit_area": ("登记改造面积（至少 {need:area}）", "record the retrofit area (at least {need:area})"),
    "todo.saving_target": ("在项目中设定不低于 {need:pct} 的节能目标",
                           "set an energy-saving target of at least {need:pct} in the project"),
    "todo.measures": ("改造措施中包含：{need:list=measure}", "include a measure of the kind: {need:list=measure}"),
    "todo.other_subsidies": ("申报本项目的其他资金来源（不得同时享受：{need:list}）",
                             "declare the project's other funding (it may not also be funded by: {need:list})"),
    "todo.listed": ("将项目列入该政策的项目库", "get the project listed in the policy's programme"),
    "todo.vote": ("召开业主大会表决（民法典第278条）并登记结果",
                  "hold the owners' vote (Civil Code art. 278) and record the result"),
    "todo.construction": ("开工并登记施工里程碑", "start the works and record the construction milestone"),
    "todo.measured_savings": ("完成测量与验证，实测节能率不低于 {need:pct}（目前 {has:pct}）",
                              "measure and verify savings of at least {need:pct} (now {has:pct})"),
    "todo.measured_savings_none": ("完成测量与验证，实测节能率不低于 {need:pct}",
                                   "measure and verify savings of at least {need:pct}"),
    "todo.savings_adequate": ("实测节能结果须满足 ASHRAE Guideline 14（基线模型精度）",
                              "the measured savings must pass ASHRAE Guideline 14 (baseline model accuracy)"),
    "todo.provide": ("补充{field:fact}（要求 {need:fv}，目前 {has:fv}）",
                     "provide {field:fact} (needs {need:fv}, now {has:fv})"),
    "todo.provide_none": ("补充{field:fact}（要求 {need:fv}，目前暂无数据）",
                          "provide {field:fact} (needs {need:fv}, no data yet)"),
    "todo.must_not": ("{field:fact}不得为 {need:fv}（目前 {has:fv}）",
                      "{field:fact} must not be {need:fv} (now {has:fv})"),
    "todo.not_rule": ("存在排除条件", "an exclusion rule applies"),
    "todo.stage": ("完成“{stage:term=stage}”阶段（第 {seq} 笔拨付）",
                   "complete the {stage:term=stage} stage (payment {seq})"),
    "todo.document": ("上传文件：{doc:term=doc}（第 {seq} 笔拨付）",
                      "upload the document: {doc:term=doc} (payment {seq})"),
    # a condition that cannot be changed: why the policy is out of reach
    "todo.policy_closed": ("政策不在有效期内", "the policy is not open on the evaluation date"),
    "todo.outside_jurisdiction": ("楼宇不在政策适用地区内", "the building lies outside the policy's area"),
    "todo.fixed": ("{field:fact}不符合要求（要求 {need:fv}，实际 {has:fv}），无法更改",
                   "{field:fact} does not qualify (needs {need:fv}, has {has:fv}); this cannot be changed"),
    "todo.fixed_unknown": ("核实{field:fact}（暂无数据）", "confirm {field:fact} (no data yet)"),
    # why measured savings cannot be computed (buildings.savings.BaselineError)
    "savings.no_baseline_days": ("基准期内没有同时具备电量和室外温度数据的日子；"
                                 "请检查电表累计值和室外温度测点是否有历史数据",
                                 "the baseline period has no day with both energy and outdoor temperature data; "
                                 "check the meter counter and the outdoor air temperature point have history"),
    "savings.too_short": ("基准期过短：{days} 天（{first:date} 至 {last:date}）；IPMVP 方法 C 至少需要 {min_days} 天"
                          "（完整一年的季节）。请选择更早的开始日期。",
                          "baseline too short: {days} days ({first:date} to {last:date}); IPMVP option C needs at "
                          "least {min_days} days (one full year of seasons). Choose an earlier start."),
    "savings.gaps": ("基准期缺数过多：{span} 天中只有 {have} 天同时有电量和温度（{coverage:pct} < {min:pct}）；"
                     "请补录缺失数据或调整时段",
                     "baseline has too many gaps: {have} of {span} days have energy and temperature "
                     "({coverage:pct} < {min:pct}); backfill the missing data or move the period"),
    "savings.temp_range": ("基准期室外温度变化仅 {range:num1} K；温度模型至少需要 {min:num0} K 的季节变化",
                           "baseline outdoor temperature spans only {range:num1} K; a temperature model needs at "
                           "least {min:num0} K of seasons"),
    "savings.no_temperature": ("{first:date} 至 {last:date} 期间，{building}（以及站点内其他楼宇）"
                               "都没有室外温度历史数据",
                               "no outdoor air temperature history for {building} (nor elsewhere in the site) "
                               "between {first:date} and {last:date}"),
    "savings.no_reporting_days": ("报告期内没有同时具备电量和室外温度数据的日子",
                                  "the reporting period has no day with both energy and outdoor temperature data"),
    "savings.no_retrofit_date": ("{building} 没有改造日期；请给出基准期和报告期",
                                 "{building} has no retrofit date; give the baseline and reporting periods"),
    "savings.no_reporting_yet": ("{building} 于 {date:date} 改造，截至 {today:date} 尚无报告期数据",
                                 "the retrofit of {building} on {date:date} has no reporting day before "
                                 "{today:date} yet"),
    # reasons of the district ranking
    "rank.no_eui": ("没有能耗强度记录", "no EUI on record"),
    "rank.no_gbt": ("GB/T 51161 没有“{use:term=use}”用途的指标", "no GB/T 51161 office value for use {use:term=use}"),
    "rank.eui": ("能耗强度 {eui:num0} kWh/m²·a，{cls:term=gbt} 约束值 {constraint:num0}、引导值 {leading:num0}："
                 "{band:term=band}",
                 "EUI {eui:num0} kWh/m²·a vs {cls:term=gbt} {constraint:num0}/{leading:num0}: {band:term=band}"),
    "rank.no_target": ("没有设定节能目标的改造项目", "no project with a savings target"),
}

# How a condition field's values are shown (the spec of a placeholder, see the module docstring).
FIELD_FORMAT: dict[str, str] = {
    "policy.open": "yn", "building.in_jurisdiction": "yn", "building.use_type_public": "yn",
    "city.is_key_city": "yn", "building.monitoring.has_submetering": "yn", "owner.is_sme": "yn",
    "project.vote_required": "yn", "project.vote_passed": "yn", "project.construction_started": "yn",
    "application.submitted_before_works": "yn", "savings.adequate": "yn",
    "building.use": "term=use", "building.ownership.structure_class": "list=structure",
    "owner.kind": "list=owner_kind", "project.measure_categories": "list=measure",
    "project.other_subsidies": "list", "project.listed_in_policies": "list",
    "building.gross_floor_area_m2": "area", "project.retrofit_area_m2": "area",
    "project.targets.energy_saving_pct": "pct", "savings.measured_pct": "pct",
    "building.ownership.top_share": "pct", "building.ownership.top3_share": "pct",
    "project.governance_approval.area_approval_pct": "pct", "project.governance_approval.headcount_approval_pct": "pct",
    "building.ownership.hhi": "num1", "building.monitoring.months_reporting": "num1",
    "building.monitoring.platform_connected_since": "date", "building.age_years": "num0",
    "building.ownership.owner_count": "num0", "building.ownership.unified_operator_id": "text",
}

# field -> (to-do key, who acts, the dashboard page that holds the evidence)
TODO_FOR: dict[str, tuple[str, str, str | None]] = {
    "building.monitoring.months_reporting": ("todo.months_reporting", "owner", "energy"),
    "building.monitoring.platform_connected_since": ("todo.platform_connect", "technician", "building"),
    "building.monitoring.has_submetering": ("todo.submetering", "technician", "building"),
    "building.ownership.unified_operator_id": ("todo.unified_operator", "owner", "retrofit"),
    "project.retrofit_area_m2": ("todo.retrofit_area", "owner", "retrofit"),
    "project.targets.energy_saving_pct": ("todo.saving_target", "owner", "retrofit"),
    "project.measure_categories": ("todo.measures", "owner", "retrofit"),
    "project.other_subsidies": ("todo.other_subsidies", "owner", "retrofit"),
    "project.listed_in_policies": ("todo.listed", "district", "program"),
    "project.vote_passed": ("todo.vote", "owner", "retrofit"),
    "project.governance_approval.area_approval_pct": ("todo.vote", "owner", "retrofit"),
    "project.governance_approval.headcount_approval_pct": ("todo.vote", "owner", "retrofit"),
    "project.construction_started": ("todo.construction", "owner", "retrofit"),
    "savings.measured_pct": ("todo.measured_savings", "technician", "energy"),
    "savings.adequate": ("todo.savings_adequate", "technician", "energy"),
}


def jsonable(v: Any) -> Any:
    """A parameter as JSON data: dates as ISO strings, sets and tuples as lists."""
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, list | tuple | set | frozenset):
        return [jsonable(x) for x in v]
    return v


@dataclass(frozen=True)
class Msg:
    """A sentence as a catalogue key and its parameters; ``str()`` is the plain English text."""

    key: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return render(TEXT[self.key][1], self.args, plain_field)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "args": {k: jsonable(v) for k, v in self.args.items()}}


@dataclass(frozen=True)
class Todo:
    """One thing that stands between a building and a subsidy: what to do, who does it, where the evidence is.

    ``fixed``: a fact nobody can change (the reason a policy is out of reach, not a task). Items with the same
    ``group`` are alternatives (any one ``branch`` of the group is enough)."""

    msg: Msg
    actor: str | None  # owner, district, technician; None for a fixed fact
    page: str | None = None
    fixed: bool = False
    group: int | None = None
    branch: int = 0

    def __str__(self) -> str:
        return str(self.msg)

    def as_dict(self) -> dict[str, Any]:
        return {**self.msg.as_dict(), "actor": self.actor, "page": self.page, "fixed": self.fixed,
                "group": self.group, "branch": self.branch}


FieldFormatter = Callable[[Any, str, Mapping[str, Any]], str]


class _Formatter(string.Formatter):
    def __init__(self, fmt: FieldFormatter, args: Mapping[str, Any]) -> None:
        self._fmt, self._args = fmt, args

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec == "fv":
            format_spec = FIELD_FORMAT.get(str(self._args.get("field", "")), "")
        return self._fmt(value, format_spec, self._args)


def render(template: str, args: Mapping[str, Any], fmt: FieldFormatter) -> str:
    """Fill a template, formatting every placeholder with ``fmt(value, spec, args)``."""
    return _Formatter(fmt, args).vformat(template, (), dict(args))


def plain_field(value: Any, spec: str, args: Mapping[str, Any]) -> str:
    """The plain (English, ISO) rendering of one parameter, for the CLI and the API's text fields."""
    if value is None:
        return "n/a" if spec in ("pct", "num0", "num1") else "open-ended" if spec == "date" else "-"
    if spec == "pct" and isinstance(value, int | float):
        return f"{value:.1%}"
    if spec == "num0" and isinstance(value, int | float):
        return f"{value:,.0f}"
    if spec == "num1" and isinstance(value, int | float):
        return f"{value:,.1f}"
    if spec in ("area", "money") and isinstance(value, int | float):
        return f"{value:,.0f}" + (" m2" if spec == "area" else "")
    if spec.startswith("list") and isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(x) for x in value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
