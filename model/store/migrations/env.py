"""Alembic environment: always run by `model.store.database.Database.migrate` on its own connection."""

from alembic import context

from model.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
