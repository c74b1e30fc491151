"""Readings and how they are stored: InfluxDB, the embedded store, the durable buffer, queries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telemetry.reading import Quality, Reading
from telemetry.store import Agg, Store, StoreAuthError, StoreError, StoreRejected, StoreUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from retrofit.settings import Settings

__all__ = ["Agg", "Quality", "Reading", "Store", "StoreAuthError", "StoreError", "StoreRejected",
           "StoreUnavailable", "open_store"]


def open_store(settings: Settings | Any, readonly: bool = False, site: Any = None) -> Store:
    """The configured store: InfluxDB when settings.influx_url is set, else SQLite at settings.embedded_store_path.

    ``settings`` is a retrofit.settings.Settings (duck-typed: telemetry does not import retrofit).
    ``readonly`` opens the embedded file without creating it, for dashboards and checks; InfluxDB ignores it.
    ``site`` (a buildings.site.Site), when given, adds equipment/brick/subitem tags to InfluxDB writes.
    Raises StoreUnavailable / StoreAuthError with a message that says what to fix (never the secret).
    """
    if getattr(settings, "influx_url", None):
        from telemetry.influx import InfluxStore, site_tag_resolver

        return InfluxStore.from_settings(settings, tag_resolver=site_tag_resolver(site) if site is not None else None)
    from telemetry.embedded import EmbeddedStore

    return EmbeddedStore(settings.embedded_store_path, readonly=readonly)
