"""The dashboard's language catalogue (Chinese first, English second) and locale-aware formatting.

Every label and message on every page comes from ``CATALOGUE`` through ``Tr``; a test checks that each key
used in the dashboard's source has both languages. Numbers, money and dates are formatted with Babel for the
chosen locale so that a Chinese reader sees 2026年11月26日 and an English reader Nov 26, 2026.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent

from buildings.retrofit import STAGE_LABELS
from buildings.subsidy.messages import FIELD_FORMAT, TEXT, Msg, render

LANGUAGES = ("zh", "en")
LOCALES = {"zh": "zh_CN", "en": "en_US"}
NEGATED_OP = {"in": "not_in", "not_in": "in", "==": "!=", "!=": "==", ">=": "<", "<": ">=", "<=": ">", ">": "<="}
EMPTY = "—"  # what an empty, missing or not-a-number value shows


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value) or (isinstance(value, float) and math.isnan(value))


# key -> (Chinese, English). Placeholders use str.format names.
CATALOGUE: dict[str, tuple[str, str]] = {
    # shell
    "app.title": ("老旧商务楼宇改造平台", "Building retrofit platform"),
    "app.language": ("语言 / Language", "语言 / Language"),
    "app.signed_in_as": ("已登录：{user}（{role}）", "Signed in as {user} ({role})"),
    "app.sign_out": ("退出登录", "Sign out"),
    "app.session_expired": ("会话已超时，请重新登录。", "Your session timed out; please sign in again."),
    "app.no_pages": ("此账户没有可访问的页面。", "This account has no pages to show."),
    "app.site_missing": ("无法加载站点文件 {path}：{error}", "Cannot load the site {path}: {error}"),
    "app.store_unavailable": ("遥测数据库暂不可用：{error}。其他数据照常显示。",
                              "The telemetry store is unreachable: {error}. Other data is still shown."),
    "app.feature_missing": ("此功能尚未安装：{what}。", "This feature is not installed yet: {what}."),
    "app.no_buildings": ("您的账户没有可查看的楼宇。", "There are no buildings for your account."),
    "app.page_denied": ("您的角色无权查看此页面。", "Your role may not open this page."),
    "app.not_found": ("未找到该楼宇，或您无权查看。", "No such building, or you may not see it."),
    "app.no_data": ("所选范围内没有数据。", "No data in the chosen range."),
    "app.download_csv": ("下载 CSV", "Download CSV"),
    "app.download_xlsx": ("下载 Excel", "Download Excel"),
    # roles
    "role.owner": ("业主", "owner"),
    "role.district": ("区商务委", "district"),
    "role.technician": ("技术员", "technician"),
    # sign-in
    "login.title": ("登录", "Sign in"),
    "login.username": ("用户名", "Username"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Sign in"),
    "login.failed": ("用户名或密码错误。", "Wrong username or password."),
    "login.locked": ("尝试次数过多，请在 {seconds} 秒后重试。",
                     "Too many attempts; try again in {seconds} s."),
    "login.unavailable": ("用户数据库不可用：{error}", "The user database is unavailable: {error}"),
    # page names
    "page.portfolio": ("楼宇总览", "Portfolio"),
    "page.building": ("楼宇详情", "Building"),
    "page.energy": ("能耗分析", "Energy"),
    "page.alarms": ("告警", "Alarms"),
    "page.retrofit": ("改造项目", "Retrofit"),
    "page.subsidies": ("补贴", "Subsidies"),
    "page.program": ("区级改造计划", "District programme"),
    "page.simulators": ("仿真楼宇", "Simulators"),
    # common columns
    "col.building": ("楼宇", "Building"),
    "col.building_id": ("楼宇编号", "Building id"),
    "col.address": ("地址", "Address"),
    "col.year": ("建成年份", "Year built"),
    "col.area": ("建筑面积 (m²)", "Floor area (m²)"),
    "col.use": ("用途", "Use"),
    "col.eui": ("能耗强度 (kWh/m²·a)", "EUI (kWh/m²·a)"),
    "col.alarms_critical": ("严重告警", "Critical alarms"),
    "col.alarms_fault": ("故障告警", "Fault alarms"),
    "col.alarms_warning": ("一般告警", "Warnings"),
    "col.stage": ("改造阶段", "Retrofit stage"),
    "col.subsidy": ("补贴状态", "Subsidy status"),
    "col.owners": ("业主数", "Owners"),
    "col.point": ("测点", "Point"),
    "col.equipment": ("设备", "Equipment"),
    "col.value": ("数值", "Value"),
    "col.unit": ("单位", "Unit"),
    "col.quality": ("数据质量", "Quality"),
    "col.time": ("时间", "Time"),
    "col.device": ("采集设备", "Device"),
    "col.health": ("设备状态", "Device health"),
    "col.severity": ("级别", "Severity"),
    "col.family": ("类别", "Family"),
    "col.rule": ("规则", "Rule"),
    "col.message": ("说明", "Message"),
    "col.state": ("状态", "State"),
    "col.raised": ("发生时间", "Raised"),
    "col.acked_by": ("确认人", "Acknowledged by"),
    "col.comment": ("备注", "Comment"),
    "col.energy_kwh": ("电量 (kWh)", "Energy (kWh)"),
    "col.period": ("时段", "Period"),
    "col.measure": ("改造措施", "Measure"),
    "col.description": ("说明（项目档案）", "Description (project record)"),
    "col.budget": ("预算", "Budget"),
    "col.paid": ("已拨付", "Paid"),
    "col.estimated": ("预计补贴", "Estimated subsidy"),
    "col.policy": ("政策", "Policy"),
    "col.condition": ("条件", "Condition"),
    "col.status": ("状态", "Status"),
    "col.evidence": ("依据", "Evidence"),
    "col.type": ("类型", "Type"),
    "col.expected": ("要求", "Required"),
    "col.actual": ("实际", "Actual"),
    "col.structure": ("产权结构", "Ownership"),
    "col.verdict": ("最佳补贴结论", "Best subsidy verdict"),
    "col.reasons": ("排名依据", "Reasons"),
    "col.eui_source": ("能耗数据来源", "EUI source"),
    "col.rank": ("排名", "Rank"),
    "col.score": ("得分", "Score"),
    "col.savings": ("节能量", "Savings"),
    "col.savings_pct": ("节能率", "Savings rate"),
    "col.milestone": ("里程碑", "Milestone"),
    "col.start": ("开始", "Start"),
    "col.end": ("结束", "End"),
    "col.document": ("文件", "Document"),
    "col.project": ("项目", "Project"),
    "col.progress": ("进度", "Progress"),
    "col.fault": ("故障", "Fault"),
    "col.running": ("运行中", "Running"),
    # quality and health
    "quality.good": ("正常", "good"),
    "quality.stale": ("过期", "stale"),
    "quality.comm-failure": ("通信故障", "comm failure"),
    "quality.out-of-range": ("超量程", "out of range"),
    "quality.bad-config": ("配置错误", "bad config"),
    "quality.bad": ("坏值", "bad"),
    "quality.none": ("无数据", "no data"),
    "health.ok": ("在线", "ok"),
    "health.degraded": ("降级", "degraded"),
    "health.offline": ("离线", "offline"),
    "health.unknown": ("未知", "unknown"),
    # severity, alarm state
    "severity.critical": ("严重", "critical"),
    "severity.fault": ("故障", "fault"),
    "severity.warning": ("警告", "warning"),
    "severity.advisory": ("提示", "advisory"),
    "state.raised": ("未确认", "raised"),
    "state.acknowledged": ("已确认", "acknowledged"),
    "state.cleared": ("已恢复", "cleared"),
    # sub-items
    "subitem.lighting_sockets": ("照明插座", "Lighting & sockets"),
    "subitem.hvac": ("空调", "HVAC"),
    "subitem.power": ("动力", "Power"),
    "subitem.special": ("特殊用电", "Special"),
    "subitem.total": ("总用电", "Total"),
    "subitem.other": ("其他", "Other"),
    # portfolio
    "portfolio.title": ("楼宇总览", "Portfolio"),
    "portfolio.buildings": ("楼宇数", "Buildings"),
    "portfolio.floor_area": ("总建筑面积 (m²)", "Total floor area (m²)"),
    "portfolio.active_alarms": ("未恢复告警", "Active alarms"),
    "portfolio.median_eui": ("能耗强度中位数", "Median EUI"),
    "portfolio.map": ("楼宇分布", "Map"),
    "portfolio.table": ("楼宇列表", "Buildings"),
    "portfolio.open": ("打开楼宇", "Open building"),
    "portfolio.eui_note": ("能耗强度按最近 12 个月总电量计算。", "EUI is the last 12 months' total electricity."),
    # portfolio map
    "map.colour_by": ("着色依据", "Colour by"),
    "map.mode.eui": ("能耗强度", "Energy intensity"),
    "map.mode.alarms": ("告警状态", "Alarm state"),
    "map.state.critical": ("有严重告警", "Critical alarm open"),
    "map.state.fault": ("有故障告警", "Fault alarm open"),
    "map.state.warning": ("有一般告警", "Warning open"),
    "map.state.none": ("无未恢复告警", "No open alarms"),
    "map.no_eui": ("暂无能耗数据", "No energy data yet"),
    "map.open_alarms": ("未恢复告警", "Open alarms"),
    "map.district": ("区界", "District boundary"),
    "map.water": ("江面", "River"),
    "map.no_location": ("楼宇没有经纬度，无法上图（在站点文件中填写 lat/lon）。",
                        "No building has a latitude and longitude to map (set lat/lon in the site files)."),
    "map.no_basemap": ("未安装区界底图，楼宇仅按经纬度显示（见 docs/dashboard.md 的“地图”一节）。",
                       "No district base map is installed: buildings are placed by latitude and longitude only "
                       "(see the Map section of docs/dashboard.md)."),
    "map.bad_basemap": ("底图文件无法使用：{error}", "The base map file cannot be used: {error}"),
    "map.attribution": ("底图：{attribution}，{source}，许可 {licence}。",
                        "Base map: {attribution}, {source}, licence {licence}."),
    "map.click_hint": ("点击楼宇可打开其详情页。", "Click a building to open its page."),
    # building
    "building.choose": ("选择楼宇", "Choose a building"),
    "building.tree": ("设备树", "Equipment tree"),
    "building.live": ("实时数据", "Live values"),
    "building.trends": ("趋势", "Trends"),
    "building.points": ("测点", "Points"),
    "building.range": ("时间范围", "Range"),
    "building.window": ("聚合窗口", "Window"),
    "building.agg": ("聚合方式", "Aggregate"),
    "building.subitems": ("分项能耗", "Sub-item energy"),
    "building.devices_ok": ("在线设备", "Devices online"),
    "building.points_n": ("测点数", "Points"),
    "building.last_update": ("最近更新", "Last update"),
    "building.owners": ("产权构成", "Ownership"),
    "building.area": ("建筑面积", "Floor area"),
    "portfolio.subsidy_paid": ("{states}（已拨付 {amount}）", "{states} (paid {amount})"),
    "range.1d": ("近 1 天", "Last day"),
    "range.7d": ("近 7 天", "Last 7 days"),
    "range.30d": ("近 30 天", "Last 30 days"),
    "range.365d": ("近 12 个月", "Last 12 months"),
    "window.15min": ("15 分钟", "15 min"),
    "window.1h": ("1 小时", "1 hour"),
    "window.1d": ("1 天", "1 day"),
    "agg.mean": ("平均", "mean"),
    "agg.min": ("最小", "min"),
    "agg.max": ("最大", "max"),
    # energy
    "energy.daily": ("日用电量", "Daily energy"),
    "energy.monthly": ("月用电量", "Monthly energy"),
    "energy.heatmap": ("周-小时用电热力图", "Hour-of-week heatmap"),
    "energy.profile": ("负荷曲线（按小时平均功率）", "Load profile (mean power by hour)"),
    "energy.compare": ("同比/环比", "Period comparison"),
    "energy.this_period": ("本期", "This period"),
    "energy.prev_period": ("上期", "Previous period"),
    "energy.change": ("变化", "Change"),
    "energy.intensity": ("能耗强度 vs GB/T 51161", "Intensity vs GB/T 51161"),
    "energy.constraint": ("约束值", "Constraint value"),
    "energy.leading": ("引导值", "Leading value"),
    "energy.savings": ("实测节能（相对基线）", "Measured savings vs baseline"),
    "energy.not_retrofitted": ("该楼宇尚未完成改造，暂无节能量。", "Not retrofitted yet: no savings to measure."),
    "energy.no_baseline": ("暂无法计算实测节能量：{reason}", "Measured savings cannot be computed yet: {reason}"),
    "energy.recorded_savings": ("已登记的实测节能量", "Recorded measured savings"),
    "energy.weekday": ("星期", "Weekday"),
    "energy.weekend": ("周末", "Weekend"),
    "energy.workday": ("工作日", "Working day"),
    "energy.hour": ("小时", "Hour"),
    "energy.kw": ("平均功率 (kW)", "Mean power (kW)"),
    "energy.baseline": ("基线", "Baseline"),
    "energy.actual": ("实际", "Actual"),
    "energy.no_meters": ("该楼宇没有电能表测点。", "This building has no energy meter points."),
    "energy.days": ("天数", "Days"),
    "energy.total_year": ("近 12 个月用电", "Last 12 months"),
    "energy.eui_label": ("能耗强度", "EUI"),
    "energy.over_constraint": ("超过约束值", "Above the constraint value"),
    "energy.under_leading": ("优于引导值", "Better than the leading value"),
    "energy.between": ("介于引导值与约束值之间", "Between leading and constraint values"),
    # alarms
    "alarms.active": ("当前告警", "Active alarms"),
    "alarms.history": ("历史告警", "History"),
    "alarms.filter_building": ("楼宇", "Building"),
    "alarms.filter_family": ("类别", "Family"),
    "alarms.filter_severity": ("级别", "Severity"),
    "alarms.ack": ("确认", "Acknowledge"),
    "alarms.ack_comment": ("确认备注", "Comment"),
    "alarms.ack_done": ("告警 {id} 已确认。", "Alarm {id} acknowledged."),
    "alarms.ack_denied": ("您无权确认告警。", "You may not acknowledge alarms."),
    "alarms.choose": ("选择告警", "Choose an alarm"),
    "alarms.context": ("告警前后数据", "What the rule saw"),
    "alarms.none": ("没有符合条件的告警。", "No alarms match."),
    "alarms.count": ("告警数", "Alarms"),
    "alarms.flood_active": ("告警泛滥：{building} 最近 {minutes} 分钟新增 {n} 条告警，"
                            "超过 {limit} 条的上限（ISA-18.2）。",
                            "Alarm flood: {building} raised {n} alarms in the last {minutes} minutes, over the "
                            "limit of {limit} (ISA-18.2)."),
    "alarms.flood_suppressed": ("泛滥抑制：{building} 近 24 小时有 {n} 条告警被限流隐藏（{rules}）；"
                                "安全类告警从不隐藏。",
                                "Flood control: {n} alarms of {building} suppressed in the last 24 h ({rules}); "
                                "safety alarms are never hidden."),
    "alarms.show_suppressed": ("显示被抑制的告警（检修、泛滥抑制）",
                               "Show suppressed alarms (maintenance, flood control)"),
    "alarms.group": ("{n} 个点：{points}", "{n} points: {points}"),
    "family.sensor_health": ("传感器健康", "sensor health"),
    "family.energy": ("能耗", "energy"),
    "family.safety": ("安全", "safety"),
    # retrofit
    "retrofit.none": ("没有改造项目。", "No retrofit projects."),
    "retrofit.measures": ("改造措施", "Measures"),
    "retrofit.stages": ("阶段", "Stages"),
    "retrofit.timeline": ("里程碑时间线", "Milestone timeline"),
    "retrofit.documents": ("文件", "Documents"),
    "retrofit.progress": ("进度", "Progress"),
    "retrofit.budget": ("预算", "Budget"),
    # subsidies
    "subsidy.none": ("没有补贴评估结果。", "No subsidy assessments."),
    "subsidy.eligible": ("符合", "eligible"),
    "subsidy.not_eligible": ("不符合", "not eligible"),
    "subsidy.pending": ("暂未满足（可补足）", "not yet"),
    "subsidy.missing": ("尚缺条件", "Still missing"),
    "subsidy.estimated": ("预计补贴", "Estimated subsidy"),
    "subsidy.paid": ("已拨付", "Paid"),
    "subsidy.met": ("满足", "met"),
    "subsidy.not_met": ("未满足", "not met"),
    "subsidy.pass": ("满足", "met"),  # buildings.subsidy.status.ConditionStatus, for the conditions' status
    "subsidy.fail": ("未满足", "not met"),
    "subsidy.unknown": ("待核实", "unknown"),
    "subsidy.headline.eligible": ("符合条件 · 预计补贴 {amount}", "Eligible · estimated subsidy {amount}"),
    "subsidy.headline.not_yet": ("暂未满足，可补足 · 满足后预计补贴 {amount}",
                                 "Not yet: can still qualify · estimated subsidy once met {amount}"),
    "subsidy.headline.not_eligible": ("不符合条件", "Not eligible"),
    "subsidy.headline.no_amount": ("暂未满足，可补足 · 补齐项目面积和节能目标后可估算金额",
                                   "Not yet: can still qualify · the amount can be estimated once the project has "
                                   "an area and a savings target"),
    "subsidy.before_payment": ("各笔拨付前还需", "Before each payment"),
    "subsidy.next": ("下一步", "What to do next"),
    "subsidy.why_not": ("原因", "Why not"),
    "subsidy.who_does": ("**{who}**：{what}", "**{who}**: {what}"),
    "subsidy.any_of": ("以下任选其一：", "any one of:"),
    "subsidy.and": ("；并且", "; and "),
    "subsidy.evidence_link": ("查看依据：{page}", "Evidence: {page}"),
    "subsidy.details": ("条件明细", "Condition details"),
    "subsidy.open_policies": ("可申请的政策", "Policies within reach"),
    # programme
    "program.projects_by_stage": ("各阶段项目数", "Projects by stage"),
    "program.committed": ("已承诺预算", "Budget committed"),
    "program.paid": ("已拨付", "Paid"),
    "program.savings": ("已实现节能", "Savings achieved"),
    "program.ranking": ("待改造楼宇优先级", "Priority of buildings not yet retrofitted"),
    "program.export": ("导出", "Export"),
    "program.projects": ("项目数", "Projects"),
    "program.story": ("第 {rank} 名 **{building}** · {verdict} · 预计补贴 {amount} · 排名依据：{reasons}",
                      "No. {rank} **{building}** · {verdict} · estimated subsidy {amount} · because: {reasons}"),
    "program.no_amount": ("暂无法估算", "not estimable yet"),
    # subsidy conditions: the facts the policies test (buildings/records/queries.py)
    "fact.application.submitted_before_works": ("开工前已申报", "Applied before works started"),
    "fact.building.gross_floor_area_m2": ("建筑面积 (m²)", "Gross floor area (m²)"),
    "fact.building.in_jurisdiction": ("位于政策辖区", "In the policy's jurisdiction"),
    "fact.building.monitoring.has_submetering": ("已安装分项计量", "Sub-item metering installed"),
    "fact.building.monitoring.months_reporting": ("能耗数据上传月数", "Months reporting to the platform"),
    "fact.building.monitoring.platform_connected_since": ("接入监测平台日期", "Connected to the platform since"),
    "fact.building.ownership.structure_class": ("产权结构", "Ownership structure"),
    "fact.building.ownership.unified_operator_id": ("统一运营主体", "Unified operator"),
    "fact.building.ownership.owner_count": ("业主人数", "Number of owners"),
    "fact.building.use_type_public": ("公共建筑", "Public (non-residential) building"),
    "fact.building.year_built": ("建成年份", "Year built"),
    "fact.building.age_years": ("楼龄（年）", "Building age (years)"),
    "fact.city.is_key_city": ("节能改造重点城市", "Key city of the retrofit programme"),
    "fact.owner.kind": ("申请主体类型", "Applicant type"),
    "fact.owner.is_sme": ("中小企业", "Small or medium enterprise"),
    "fact.policy.open": ("政策在有效期内", "Policy open"),
    "fact.project.listed_in_policies": ("已列入政策项目库", "Listed under the policy"),
    "fact.project.measure_categories": ("改造措施类别", "Measure categories"),
    "fact.project.other_subsidies": ("其他补贴（不得重复）", "Other subsidies (no double funding)"),
    "fact.project.retrofit_area_m2": ("改造面积 (m²)", "Retrofit area (m²)"),
    "fact.project.targets.energy_saving_pct": ("目标节能率", "Target energy saving"),
    "fact.project.vote_passed": ("业主表决通过", "Owners' vote passed"),
    "fact.project.vote_required": ("需业主表决（民法典第278条）", "Owners' vote needed (Civil Code art. 278)"),
    "fact.project.construction_started": ("已开工", "Construction started"),
    "fact.savings.adequate": ("实测节能量满足 ASHRAE 14", "Measured savings meet ASHRAE Guideline 14"),
    "fact.savings.measured_pct": ("实测节能率", "Measured savings rate"),
    "fact.building.district_code": ("行政区划代码", "District code"),
    "fact.building.country": ("国家", "Country"),
    "fact.building.use": ("建筑用途", "Building use"),
    "fact.building.ownership.top_share": ("最大业主份额", "Largest owner's share"),
    "fact.building.ownership.top3_share": ("前三位业主份额", "Three largest owners' share"),
    "fact.building.ownership.hhi": ("产权集中度指数 (HHI)", "Ownership concentration (HHI)"),
    "fact.project.governance_approval.area_approval_pct": ("同意面积占比", "Approving share of area"),
    "fact.project.governance_approval.headcount_approval_pct": ("同意人数占比", "Approving share of owners"),
    # simulators
    "sim.unreachable": ("仿真器操作失败：{error}", "Simulator request failed: {error}"),
    "sim.target": ("故障对象", "Target"),
    "sim.minutes": ("持续分钟（0 为直到清除）", "Minutes (0 = until cleared)"),
    "sim.start": ("启动", "Start"),
    "sim.stop": ("停止", "Stop"),
    "sim.inject": ("注入故障", "Inject fault"),
    "sim.clear": ("清除故障", "Clear fault"),
    "sim.faults": ("当前故障", "Active faults"),
    "sim.scenario": ("故障场景", "Fault scenario"),
    "sim.collected": ("采集端读到的数据", "What the collectors read"),
    "sim.done": ("已执行：{what}", "Done: {what}"),
    "sim.buildings": ("仿真楼宇", "Simulated buildings"),
    # enumerations (term=KIND in messages, Tr.term)
    "use.office": ("办公", "office"),
    "use.retail": ("商业零售", "retail"),
    "use.hotel": ("酒店", "hotel"),
    "use.mixed": ("综合", "mixed use"),
    "use.converted_industrial": ("工业改建", "converted industrial"),
    "structure.single": ("单一产权", "single owner"),
    "structure.concentrated": ("产权集中", "concentrated"),
    "structure.fragmented": ("产权分散", "fragmented"),
    "verdict.eligible": ("符合", "eligible"),
    "verdict.not_yet": ("暂未满足（可补足）", "not yet"),
    "verdict.not_eligible": ("不符合", "not eligible"),
    "owner_kind.individual": ("个人", "individual"),
    "owner_kind.enterprise": ("企业", "enterprise"),
    "owner_kind.soe": ("国有企业", "state-owned enterprise"),
    "owner_kind.government": ("政府机关", "government"),
    "owner_kind.collective": ("集体", "collective"),
    "owner_kind.fund": ("基金", "fund"),
    "level.central": ("全国", "national"),
    "level.municipal": ("市级", "municipal"),
    "level.district": ("区级", "district"),
    "level.foreign": ("境外", "foreign"),
    "gbt.A_gov_office": ("A 类政府办公建筑", "class A government office"),
    "gbt.A_commercial_office": ("A 类商业办公建筑", "class A commercial office"),
    "gbt.B_gov_office": ("B 类政府办公建筑", "class B government office"),
    "gbt.B_commercial_office": ("B 类商业办公建筑", "class B commercial office"),
    "band.above": ("超过约束值", "above the constraint value"),
    "band.between": ("介于引导值与约束值之间", "between the leading and constraint values"),
    "band.below": ("优于引导值", "below the leading value"),
    "measure.bas_bms": ("楼宇自控系统", "building automation (BMS)"),
    "measure.submetering_platform": ("分项计量与监测平台", "sub-metering and platform"),
    "measure.led_lighting": ("LED 照明", "LED lighting"),
    "measure.lighting_controls": ("照明控制", "lighting controls"),
    "measure.vfd_pump_fan": ("水泵风机变频", "variable-speed pumps and fans"),
    "measure.chiller_plant": ("冷水机房改造", "chiller plant"),
    "measure.heat_recovery": ("热回收", "heat recovery"),
    "measure.envelope_window_film": ("外窗贴膜", "window film"),
    "measure.envelope_window_replace": ("外窗更换", "window replacement"),
    "measure.elevator_regen": ("电梯能量回馈", "lift regenerative drives"),
    "measure.elevator_modernise": ("电梯更新", "lift modernisation"),
    "measure.smart_access_security": ("智慧门禁安防", "smart access and security"),
    "measure.fire_iot": ("智慧消防", "fire-safety IoT"),
    "measure.renewable_pv": ("光伏发电", "solar PV"),
    "measure.dhw": ("生活热水", "domestic hot water"),
    "measure.power_distribution": ("配电改造", "power distribution"),
    "measure.schedule_fix": ("运行时间表优化", "operating schedules"),
    "measure.other": ("其他", "other"),
    "doc.audit_report": ("能源审计报告", "energy audit report"),
    "doc.energy_bills": ("能源账单", "energy bills"),
    "doc.retrofit_plan": ("改造方案", "retrofit plan"),
    "doc.reviewed_construction_drawings": ("审查合格的施工图", "reviewed construction drawings"),
    "doc.expert_review_minutes": ("专家评审意见", "expert review minutes"),
    "doc.public_notice": ("公示材料", "public notice"),
    "doc.vote_minutes": ("业主表决记录", "owners' vote minutes"),
    "doc.owner_authorisation": ("业主授权书", "owners' authorisation"),
    "doc.tender_docs": ("招标文件", "tender documents"),
    "doc.emc_contract": ("合同能源管理合同", "energy performance contract"),
    "doc.equipment_invoice": ("设备发票", "equipment invoices"),
    "doc.progress_report": ("施工进度报告", "progress report"),
    "doc.commissioning_report": ("调试报告", "commissioning report"),
    "doc.acceptance_filing": ("竣工验收备案", "acceptance filing"),
    "doc.as_built_drawings": ("竣工图", "as-built drawings"),
    "doc.platform_data_certificate": ("监测平台数据证明", "platform data certificate"),
    "doc.mv_report": ("测量与验证报告", "M&V report"),
    "doc.subsidy_application": ("补助申请书", "subsidy application"),
    "doc.payment_order": ("拨付单", "payment order"),
    "doc.financial_audit_report": ("财务审计报告", "financial audit report"),
    "app_status.draft": ("草稿", "draft"),
    "app_status.submitted": ("已申报", "submitted"),
    "app_status.approved": ("已批准", "approved"),
    "app_status.rejected": ("未通过", "rejected"),
    "app_status.paid": ("已拨付", "paid"),
    "app_status.partially_paid": ("部分拨付", "partially paid"),
    "app_status.withdrawn": ("已撤回", "withdrawn"),
    # a condition's requirement (col.expected): the operator and the value
    "op.==": ("{v}", "{v}"),
    "op.!=": ("不为 {v}", "not {v}"),
    "op.>=": ("≥ {v}", "≥ {v}"),
    "op.<=": ("≤ {v}", "≤ {v}"),
    "op.>": ("> {v}", "> {v}"),
    "op.<": ("< {v}", "< {v}"),
    "op.in": ("属于：{v}", "one of: {v}"),
    "op.not_in": ("不属于：{v}", "none of: {v}"),
    "op.contains": ("包含 {v}", "includes {v}"),
    "op.exists": ("须填写", "must be given"),
    "op.not": ("不得满足：{v}", "must not be: {v}"),
    "fault.sensor_stuck": ("传感器卡死", "sensor stuck"),
    "fault.sensor_drift": ("传感器漂移", "sensor drift"),
    "fault.sensor_spike": ("传感器尖峰", "sensor spike"),
    "fault.device_offline": ("设备离线", "device offline"),
    "fault.device_errors": ("设备报错", "device errors"),
    "fault.device_garbage": ("设备乱码", "device answers garbage"),
    "fault.after_hours_hvac": ("下班后空调未关", "HVAC left on after hours"),
    "fault.simultaneous_heat_cool": ("同时供冷供热", "simultaneous heating and cooling"),
    "fault.stuck_oa_damper": ("新风阀卡死", "outdoor-air damper stuck"),
    "fault.dsp_not_met": ("送风静压不达标", "duct static pressure not met"),
    "fault.switch_room_overheat": ("配电室过热", "switch room overheating"),
    "fault.co_garage": ("车库一氧化碳超标", "CO in the garage"),
    "fault.co2_high": ("二氧化碳浓度高", "CO2 high"),
    "fault.water_leak": ("漏水", "water leak"),
    "fault.smoke": ("烟雾", "smoke"),
    "fault.gas_leak": ("燃气泄漏", "gas leak"),
    "fault.voltage_unbalance": ("电压不平衡", "voltage unbalance"),
    "fault.meter_spike": ("电表尖峰", "meter spike"),
    "fault.meter_counter_reset": ("电表计数器复位", "meter counter reset"),
    "fmt.on": ("开", "on"),
    "fmt.off": ("关", "off"),
    "unit.degC": ("°C", "°C"),
    "unit.m3": ("m³", "m³"),
    "unit.m3/h": ("m³/h", "m³/h"),
    "unit.PF": ("（功率因数）", "(power factor)"),
    "fmt.yes": ("是", "yes"),
    "fmt.no": ("否", "no"),
    "fmt.months": ("{n} 个月", "{n} months"),
    "fmt.days": ("{n} 天", "{n} days"),
}

CATALOGUE.update(TEXT)  # the subsidy engine's evidence, to-do and ranking messages
CATALOGUE.update({f"stage.{s.value}": labels for s, labels in STAGE_LABELS.items()})


@dataclass(frozen=True)
class Tr:
    """Translator and formatter for one language; cheap to build per script run."""

    lang: str = "zh"

    def __post_init__(self) -> None:
        if self.lang not in LANGUAGES:
            object.__setattr__(self, "lang", "zh")

    @property
    def locale(self) -> str:
        return LOCALES[self.lang]

    def __call__(self, key: str, **kw: object) -> str:
        """The label for key in this language; an unknown key shows itself so it is noticed, never crashes."""
        pair = CATALOGUE.get(key)
        if pair is None:
            return key
        text = pair[0] if self.lang == "zh" else pair[1]
        return text.format(**kw) if kw else text

    def pick(self, zh: str | None, en: str | None) -> str:
        """Choose between a record's own Chinese and English text (rule messages, names)."""
        first, second = (zh, en) if self.lang == "zh" else (en, zh)
        return first or second or ""

    def num(self, value: float | None, digits: int = 1) -> str:
        if _empty(value):
            return EMPTY
        fmt = "#,##0" + ("." + "0" * digits if digits > 0 else "")
        return format_decimal(value, format=fmt, locale=self.locale)

    def pct(self, value: float | None, digits: int = 1) -> str:
        if _empty(value):
            return EMPTY
        return format_percent(value, format="#,##0." + "0" * digits + "%", locale=self.locale)

    def money(self, value: float | None) -> str:
        """Yuan with thousands separators, whole yuan, the same sign in both languages: ¥9,650,000."""
        if _empty(value):
            return EMPTY
        return "¥" + format_decimal(value, format="#,##0", locale=self.locale)

    def area(self, value: float | None) -> str:
        return EMPTY if _empty(value) else f"{self.num(value, 0)} m²"

    def kwh(self, value: float | None) -> str:
        return EMPTY if _empty(value) else f"{self.num(value, 0)} kWh"

    def yn(self, value: bool | None) -> str:
        """A yes/no as ✓ / ✗ (— when unknown)."""
        return EMPTY if _empty(value) else "✓" if value else "✗"

    def date(self, value: dt.date | dt.datetime | str | None) -> str:
        if _empty(value):
            return EMPTY
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value[:10])
            except ValueError:
                return value
        if not isinstance(value, dt.date):
            return str(value)
        return format_date(value, "medium", locale=self.locale)

    def datetime(self, value: dt.datetime | float | None, tz: str = "Asia/Shanghai") -> str:
        """A timestamp (aware datetime or UTC epoch seconds) in the building's local time."""
        if _empty(value):
            return EMPTY
        from zoneinfo import ZoneInfo

        if isinstance(value, int | float):
            value = dt.datetime.fromtimestamp(value, dt.UTC)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return format_datetime(value.astimezone(ZoneInfo(tz)), "yyyy-MM-dd HH:mm", locale=self.locale)

    def unit(self, unit: str | None) -> str:
        """A point's unit as printed (°C, m³/h); a state point (bool) has none."""
        if not unit or unit == "bool":
            return ""
        key = f"unit.{unit}"
        return self(key) if key in CATALOGUE else unit

    def reading(self, value: object, unit: str | None = None) -> str:
        """A live value: a state point as on/off, a number with two decimals, text as it is."""
        if _empty(value):
            return EMPTY
        if unit == "bool" and isinstance(value, int | float):
            return self("fmt.on") if value else self("fmt.off")
        return self.num(value, 2) if isinstance(value, int | float) else str(value)

    def term(self, kind: str, value: object) -> str:
        """An enumeration's value in words (catalogue key ``kind.value``): structure, verdict, stage, use..."""
        if _empty(value):
            return EMPTY
        key = f"{kind}.{value}"
        return self(key) if key in CATALOGUE else str(value)

    def fmt(self, value: object, spec: str = "", args: Mapping[str, object] | None = None) -> str:
        """One value by a message placeholder's spec (see buildings.subsidy.messages)."""
        if spec == "fv":
            spec = FIELD_FORMAT.get(str((args or {}).get("field", "")), "")
        if spec.startswith("list"):
            kind = spec.partition("=")[2]
            items = value if isinstance(value, list | tuple | set | frozenset) else [value]
            return EMPTY if _empty(value) or not items else self.sep.join(
                self.term(kind, x) if kind else self.fmt(x) for x in items)
        if _empty(value):
            return EMPTY
        if spec.startswith("term="):
            return self.term(spec[5:], value)
        simple = {"date": self.date, "pct": self.pct, "money": self.money, "area": self.area, "kwh": self.kwh,
                  "yn": self.yn, "num0": lambda v: self.num(v, 0), "num1": self.num}
        if spec in simple:
            return simple[spec](value)  # type: ignore[operator]
        if spec == "fact":
            return self(f"fact.{value}")
        if isinstance(value, bool):
            return self.yn(value)
        if isinstance(value, float):
            return self.num(value, 0 if value.is_integer() else 1)
        if isinstance(value, list | tuple):
            return self.sep.join(self.fmt(x) for x in value) or EMPTY
        return str(value)

    @property
    def sep(self) -> str:
        return "、" if self.lang == "zh" else ", "

    def msg(self, m: Msg | Mapping[str, object] | None) -> str:
        """A message (a Msg or its JSON form {key, args}) in this language, its parameters formatted."""
        if m is None:
            return EMPTY
        key, args = (m.key, m.args) if isinstance(m, Msg) else (str(m["key"]), m.get("args") or {})
        pair = CATALOGUE.get(str(key))
        if pair is None:
            return str(key)
        return render(pair[0] if self.lang == "zh" else pair[1], dict(args), self.fmt)  # type: ignore[arg-type]

    def field_value(self, field_path: str, value: object) -> str:
        """A subsidy condition field's value, formatted as that field is (FIELD_FORMAT)."""
        return self.fmt(value, FIELD_FORMAT.get(field_path, ""))

    def requirement(self, field_path: str, op: str, value: object, negated: bool = False) -> str:
        """What a condition requires, in words: ≥ 15.0%, one of: 单一产权、产权集中, must be given."""
        if negated and op in NEGATED_OP:
            op, negated = NEGATED_OP[op], False
        text = self(f"op.{op}", v=self.field_value(field_path, value))
        return self("op.not", v=text) if negated else text

    def weekdays(self) -> list[str]:
        return (["周一", "周二", "周三", "周四", "周五", "周六", "周日"] if self.lang == "zh"
                else ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
