"""Readings and how they are stored: InfluxDB, the embedded store, the durable buffer, queries."""

from telemetry.reading import Quality, Reading

__all__ = ["Quality", "Reading"]
