"""The migrations create exactly the tables `model/schema.py` declares, on each database, so
that the code's view of the schema and the real one never drift apart (every capability adds
both a migration and its Table objects)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from model.database import Database
from model.schema import metadata


def test_migrated_database_matches_the_declared_schema(database_url):
    database = Database(database_url)
    try:
        database.migrate()  # no-op where the fixture migrated already; applies all otherwise
        with database.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        database.dispose()


def test_migrating_twice_changes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/site.db"
    for _ in range(2):
        database = Database(url)
        database.migrate()
        database.dispose()
    database = Database(url)
    try:
        with database.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        database.dispose()
