"""The schema comes from the migrations, and the migrations match the models (no drift)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from models.db import create_schema, make_engine


def test_migrations_build_exactly_the_models_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        create_schema(engine)
        create_schema(engine)  # upgrading an up-to-date database changes nothing
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
            assert conn.execute(sa.text("select version_num from alembic_version")).scalar_one() == "0001"
    finally:
        engine.dispose()
