"""Subsidy policies as data: the shipped policies load, and bad policies fail with file, line and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from buildings.subsidy.policy import POLICY_DIR, PolicyError, ProvStatus, load_policies, load_policy

GOOD = """\
id: TEST-POLICY
name: test
jurisdiction: {level: district, code: "500103"}
valid_from: 2025-01-01
eligibility:
  all:
    - {field: building.in_jurisdiction, op: "==", value: true}
    - field: building.gross_floor_area_m2
      op: ">="
      value: 5000
      provenance: {status: sourced, source: "S11"}
savings_metric: energy_pct_per_m2
amount: {type: pct_of_cost, basis: eligible_cost, rate: 0.2}
caps: {abs_max: 1000000}
provenance:
  amount.rate: {status: illustrative}
  caps.abs_max: {status: sourced, source: "S17"}
"""


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_shipped_policies_load_with_provenance() -> None:
    pols = load_policies()
    assert set(pols) == {"CN-MOF-MOHURD-2011-PBR", "SH-2016-EXIST-PUB", "SH-XUHUI-2022-MATCH",
                         "SG-BCA-GMIS-EB-2.0", "CQ-YZ-OLDBLDG-SMART-DEMO"}
    yz = pols["CQ-YZ-OLDBLDG-SMART-DEMO"]
    assert yz.provenance["amount.parts[0].tiers"].status is ProvStatus.ILLUSTRATIVE
    assert yz.provenance["caps.abs_max"].status is ProvStatus.SOURCED and "S17" in yz.provenance["caps.abs_max"].source
    assert pols["SH-2016-EXIST-PUB"].provenance["amount.tiers"].status is ProvStatus.SOURCED


def test_good_policy_loads(tmp_path: Path) -> None:
    assert load_policy(_write(tmp_path, GOOD)).id == "TEST-POLICY"


@pytest.mark.parametrize("old,new,line,field,message", [
    ("field: building.gross_floor_area_m2", "field: building.gross_floor_area", 8, "eligibility.all[1]",
     "unknown condition field 'building.gross_floor_area' (did you mean 'building.gross_floor_area_m2'?)"),
    ('op: ">="\n      value: 5000', 'op: "~="\n      value: 5000', 8, "eligibility.all[1]", "unknown operator '~='"),
    ("      provenance: {status: sourced, source: \"S11\"}\n", "", 8, "eligibility.all[1]", "needs provenance"),
    ("  caps.abs_max: {status: sourced, source: \"S17\"}\n", "", 1, "(file)", "without provenance: caps.abs_max"),
    ("  amount.rate: {status: illustrative}", "  amount.rate: {status: sourced}", 16, "provenance.amount.rate",
     "a sourced number needs source"),
    ("rate: 0.2}", "rate: 20}", 13, "amount", "pct_of_cost needs rate as a fraction"),
])
def test_bad_policy_names_file_line_field(tmp_path: Path, old: str, new: str, line: int, field: str,
                                          message: str) -> None:
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    p = info.value.problems[0]
    assert p.file == str(path) and p.field == field and message in p.message, info.value
    if line > 1:
        assert p.line == line, info.value


def test_contradictory_conditions_refused(tmp_path: Path) -> None:
    bad = GOOD.replace("""      provenance: {status: sourced, source: "S11"}
""", """      provenance: {status: sourced, source: "S11"}
    - field: building.gross_floor_area_m2
      op: "<"
      value: 3000
      provenance: {status: illustrative}
""")
    with pytest.raises(PolicyError, match=r"contradictory conditions.*>= 5000 and < 3000 can never all hold"):
        load_policy(_write(tmp_path, bad))
    eq = GOOD.replace('{field: building.in_jurisdiction, op: "==", value: true}',
                      '{field: building.use, op: "==", value: office}\n'
                      '    - {field: building.use, op: in, value: [hotel, retail]}')
    with pytest.raises(PolicyError, match="building.use == 'office' and in"):
        load_policy(_write(tmp_path, eq))


def test_wrong_value_types_and_tranches(tmp_path: Path) -> None:
    bad = GOOD.replace('op: "==", value: true}', 'op: "==", value: "yes"}')
    with pytest.raises(PolicyError, match="is true/false"):
        load_policy(_write(tmp_path, bad))
    tr = GOOD + """tranches:
  - {seq: 1, pct: 40, basis: provisional, trigger_stage: procurement, required_docs: [equipment_invoice]}
  - {seq: 2, pct: 50, basis: final, trigger_stage: mv, required_docs: [mv_report]}
"""
    with pytest.raises(PolicyError, match="add up to 90, not 100"):
        load_policy(_write(tmp_path, tr))
    tr2 = tr.replace("pct: 50", "pct: 60").replace("[mv_report]", "[mv_reprot]")
    with pytest.raises(PolicyError, match="unknown document type"):
        load_policy(_write(tmp_path, tr2))


def test_folder_is_all_or_nothing(tmp_path: Path) -> None:
    for f in POLICY_DIR.glob("*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    assert len(load_policies(tmp_path)) == 5
    _write(tmp_path, GOOD.replace("valid_from: 2025-01-01", "valid_from: 2025-13-01"), "zz-bad.yaml")
    with pytest.raises(PolicyError) as info:
        load_policies(tmp_path)
    assert info.value.problems[0].file.endswith("zz-bad.yaml") and "month must be in 1..12" in str(info.value)
