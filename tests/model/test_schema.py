"""The migrations create exactly the tables `model/schema.py` declares, on each database, so
that the code's view of the schema and the real one never drift apart (every capability adds
both a migration and its Table objects)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from model.store.database import Database
from model.store.schema import metadata


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


def test_the_head_check_agrees_with_alembic(database_url):
    """`migrate` skips alembic only when every revision is applied: a database upgraded only
    part of the way (or not at all) is still migrated to every head."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from model.store.database import MIGRATIONS
    from model.store.migration_state import at_heads, revision_graph

    database = Database(database_url)
    versions = MIGRATIONS / "versions"
    try:
        with database.engine.begin() as connection:
            config = database._alembic_config(connection)
            script = ScriptDirectory.from_config(config)
            assert set(revision_graph(versions)) == {r.revision for r in script.walk_revisions()}
            command.downgrade(config, "base")
            assert not at_heads(connection, versions)
            command.upgrade(config, "0002_export")
            assert not at_heads(connection, versions)
            command.upgrade(config, "0004_uploads")            # needs 0002: 0003 still missing
            assert not at_heads(connection, versions)
        database.migrate()
        with database.engine.connect() as connection:
            assert at_heads(connection, versions)
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        database.dispose()
