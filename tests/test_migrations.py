"""The schema comes from the migrations, and the migrations match the models (no drift)."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from models.db import create_schema, make_engine
from models.tables import Deal, Member, Order, Room


# SQLite cannot reflect expression indexes, so autogenerate skips uq_order_owner there (it
# is compared on PostgreSQL, and the test below proves it exists and bites on both).
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_migrations_build_exactly_the_models_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        create_schema(engine)
        create_schema(engine)  # upgrading an up-to-date database changes nothing
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
            head = ScriptDirectory(str(files("models") / "migrations")).get_current_head()
            assert conn.execute(sa.text("select version_num from alembic_version")).scalar_one() == head
    finally:
        engine.dispose()


def test_a_member_has_one_order_per_deal_and_person_ordered_for(db_url: str) -> None:
    engine = make_engine(db_url)
    now = datetime(2026, 11, 25, tzinfo=UTC)
    try:
        create_schema(engine)
        with Session(engine) as session:
            room, member = Room(platform_id="r", name="群"), Member(platform_id="m", name="张三")
            session.add_all([room, member])
            session.flush()
            deal = Deal(room_id=room.id or 0, leader_id=member.id or 0, title="苹果", created_at=now)
            session.add(deal)
            session.flush()

            def order(placed_for: str | None) -> Order:
                return Order(deal_id=deal.id or 0, member_id=member.id or 0, placed_for=placed_for,
                             created_at=now, updated_at=now)

            session.add_all([order(None), order("王阿姨")])
            session.commit()
            for placed_for in (None, "王阿姨"):
                session.add(order(placed_for))
                with pytest.raises(IntegrityError):
                    session.commit()
                session.rollback()
    finally:
        engine.dispose()


@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_the_newest_migration_downgrades_and_upgrades_again(db_url: str) -> None:
    """Migration 0003 can be undone and redone on a database that has it."""
    from alembic import command

    from models.db import _alembic_config

    engine = make_engine(db_url)
    try:
        create_schema(engine)
        with engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0002")
            assert conn.execute(sa.text("select version_num from alembic_version")).scalar_one() == "0002"
        create_schema(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        engine.dispose()
