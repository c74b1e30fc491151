"""The records database: portfolio, retrofit projects, subsidies, users, alarms, audit log (SQLAlchemy 2)."""

from buildings.records.base import Base, make_engine, session_factory

__all__ = ["Base", "make_engine", "session_factory"]
