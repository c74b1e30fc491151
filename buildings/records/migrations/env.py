"""Alembic environment for the records database (every table on buildings.records.base.Base).

Which modules declare tables is configuration, not imports: ``record_modules`` in the Alembic config (set by
``buildings.records.migrate``; each area adds its module there). A listed module that cannot be imported is an
error, because autogenerate would otherwise propose dropping its tables. Tables that exist in the database but
are not in the metadata are never dropped by autogenerate either.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from alembic import context
from sqlalchemy import engine_from_config, pool

from buildings.records.base import Base

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.schema import SchemaItem

config = context.config
for module in (config.get_main_option("record_modules") or "").split():
    importlib.import_module(module)
target_metadata = Base.metadata


def include_object(obj: SchemaItem, name: str | None, type_: str, reflected: bool,
                   compare_to: SchemaItem | None) -> bool:
    """Never drop a table autogenerate only saw in the database (another area's table not imported here)."""
    return not (type_ == "table" and reflected and compare_to is None)


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      include_object=include_object, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
