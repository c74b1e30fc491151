"""Shared policy data (buildings/policies/_defaults.yaml): concentration thresholds, key cities, GB/T 51161
values and the ranking weights, each with its provenance."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from buildings.ownership import ConcentrationThresholds
from buildings.strict import Strict
from buildings.subsidy.policy import POLICY_DIR, PolicyError, Provenance
from buildings.yamlfile import Problem, line_of, plain, read_tree, validation_problems


class Concentration(ConcentrationThresholds):
    provenance: Provenance


class KeyCities(Strict):
    prefixes: list[str]
    provenance: Provenance


class GBT51161(Strict):
    climate_zone: str
    values: dict[str, tuple[float, float]]  # class -> (constraint, leading), kWh/(m2.a)
    default_class_by_use: dict[str, str]
    provenance: Provenance

    def limits(self, cls: str | None) -> tuple[float, float] | None:
        return self.values.get(cls or "")


class Ranking(Strict):
    weights: dict[str, float]
    concentration_scores: dict[str, float]
    age_full_years: float
    savings_full: float
    provenance: Provenance


class Defaults(Strict):
    concentration: Concentration
    key_cities: KeyCities
    gbt51161: GBT51161
    ranking: Ranking

    @property
    def thresholds(self) -> ConcentrationThresholds:
        c = self.concentration
        return ConcentrationThresholds(concentrated_top3_share_min=c.concentrated_top3_share_min,
                                       concentrated_owner_count_max=c.concentrated_owner_count_max)


@lru_cache(maxsize=8)
def load_defaults(path: str = str(POLICY_DIR / "_defaults.yaml")) -> Defaults:
    tree = read_tree(path, PolicyError, yaml_hint="")
    try:
        d = Defaults.model_validate(plain(tree))
    except ValidationError as exc:
        raise PolicyError(validation_problems(exc, path, tree)) from None
    if abs(sum(d.ranking.weights.values()) - 1) > 1e-6:
        raise PolicyError([Problem(file=path, line=line_of(tree, ("ranking", "weights")), field="ranking.weights",
                                   message=f"weights add up to {sum(d.ranking.weights.values()):g}, not 1")])
    return d


__all__ = ["Defaults", "load_defaults", "Path"]
