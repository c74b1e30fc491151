"""The dashboard's Scope: ``insight.scope.Scope`` (the one gate to the data, shared with the API) with subsidy
conditions labelled from the dashboard's zh/en catalogue. The access rules (roles, Can, ScopeDenied,
Unavailable, owner_buildings) live in ``buildings.access`` and are re-exported here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from buildings.access import ROLE_CAN, Access, Can, ScopeDenied, Unavailable, owner_buildings
from insight.retrofit import APPLICATION_ZH
from insight.scope import Scope as DataScope
from insight.scope import ScopedStore

__all__ = ["APPLICATION_ZH", "ROLE_CAN", "Access", "Can", "Scope", "ScopeDenied", "ScopedStore", "Unavailable",
           "fact_label", "owner_buildings"]


def fact_label(field_path: str, lang: int) -> str:
    """A subsidy condition's fact in words (dashboard.i18n catalogue; lang 0 = zh, 1 = en), else its path."""
    from dashboard.i18n import CATALOGUE

    pair = CATALOGUE.get(f"fact.{field_path}")
    return pair[lang] if pair else field_path


@dataclass
class Scope(DataScope):
    """The shared Scope, speaking the dashboard's words for subsidy conditions."""

    fact_label: Callable[[str, int], str] = field(default=fact_label, repr=False)
