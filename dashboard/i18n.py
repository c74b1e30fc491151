"""The dashboard's language catalogue (Chinese first, English second) and locale-aware formatting.

Every label and message on every page comes from ``CATALOGUE`` through ``Tr``; a test checks that each key
used in the dashboard's source has both languages. Numbers, money and dates are formatted with Babel for the
chosen locale so that a Chinese reader sees 2026年11月26日 and an English reader Nov 26, 2026.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

LANGUAGES = ("zh", "en")
LOCALES = {"zh": "zh_CN", "en": "en_US"}

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
    "col.budget": ("预算 (元)", "Budget (CNY)"),
    "col.paid": ("已拨付 (元)", "Paid (CNY)"),
    "col.estimated": ("预计补贴 (元)", "Estimated subsidy (CNY)"),
    "col.policy": ("政策", "Policy"),
    "col.condition": ("条件", "Condition"),
    "col.status": ("状态", "Status"),
    "col.evidence": ("依据", "Evidence"),
    "col.type": ("类型", "Type"),
    "col.expected": ("要求", "Required"),
    "col.actual": ("实际", "Actual"),
    "col.structure": ("产权结构", "Ownership"),
    "col.verdict": ("最佳补贴结论", "Best subsidy verdict"),
    "col.rank": ("排名", "Rank"),
    "col.score": ("得分", "Score"),
    "col.savings": ("节能量 (kWh)", "Savings (kWh)"),
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
    # programme
    "program.projects_by_stage": ("各阶段项目数", "Projects by stage"),
    "program.committed": ("已承诺预算", "Budget committed"),
    "program.paid": ("已拨付", "Paid"),
    "program.savings": ("已实现节能", "Savings achieved"),
    "program.ranking": ("待改造楼宇优先级", "Priority of buildings not yet retrofitted"),
    "program.export": ("导出", "Export"),
    "program.projects": ("项目数", "Projects"),
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
}


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
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        fmt = "#,##0" + ("." + "0" * digits if digits > 0 else "")
        return format_decimal(value, format=fmt, locale=self.locale)

    def pct(self, value: float | None, digits: int = 1) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return format_percent(value, format="#,##0." + "0" * digits + "%", locale=self.locale)

    def money(self, value: float | None) -> str:
        if value is None:
            return "-"
        return format_currency(value, "CNY", format="¤#,##0", locale=self.locale, currency_digits=False)

    def date(self, value: dt.date | dt.datetime | None) -> str:
        if value is None:
            return "-"
        return format_date(value, "medium", locale=self.locale)

    def datetime(self, value: dt.datetime | float | None, tz: str = "Asia/Shanghai") -> str:
        """A timestamp (aware datetime or UTC epoch seconds) in the building's local time."""
        if value is None:
            return "-"
        from zoneinfo import ZoneInfo

        if isinstance(value, int | float):
            value = dt.datetime.fromtimestamp(value, dt.UTC)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return format_datetime(value.astimezone(ZoneInfo(tz)), "yyyy-MM-dd HH:mm", locale=self.locale)

    def weekdays(self) -> list[str]:
        return (["周一", "周二", "周三", "周四", "周五", "周六", "周日"] if self.lang == "zh"
                else ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
