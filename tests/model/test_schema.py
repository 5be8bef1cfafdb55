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


def test_an_upload_in_flight_on_an_object_store_is_dropped_by_the_crc32_revision(tmp_path):
    """Its multipart upload was started without a checksum algorithm, so its parts could
    not be completed with CRC32s: the revision drops its ledger and its row (the client's
    HEAD then answers 404 and it starts again), and keeps every other upload."""
    from alembic import command
    from sqlalchemy import select, text

    from model.store import schema

    database = Database(f"sqlite:///{tmp_path}/site.db")
    try:
        with database.engine.begin() as connection:
            config = database._alembic_config(connection)
            command.upgrade(config, "0005_multipart_uploads")
            for name in ("s3", "local"):
                connection.execute(text(
                    "INSERT INTO uploads (upload_id, owner, file_id, md5, upload_length, "
                    "received_bytes, metadata, complete, created_ms, expires_ms) VALUES "
                    f"('{name}', 'cam', '{'0' * 32}', '{'0' * 32}', 10, 5, '', 0, 0, 1)"))
            connection.execute(text(
                "INSERT INTO multipart_uploads VALUES ('s3', 'k', 'm', 10, 8, 5, NULL, 0, "
                "x'00', 0)"))
            connection.execute(text(
                "INSERT INTO multipart_parts VALUES ('s3', 1, 5, 'etag', '" + "0" * 32 + "')"))
        database.migrate()
        with database.engine.connect() as connection:
            assert connection.scalars(select(schema.uploads.c.upload_id)).all() == ["local"]
            assert connection.execute(select(schema.multipart_uploads)).all() == []
            assert connection.execute(select(schema.multipart_parts)).all() == []
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        database.dispose()
