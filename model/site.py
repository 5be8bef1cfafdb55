"""Open a site's storage from its settings: the database (migrated) and the blob store."""

from dataclasses import dataclass

from model.archive import Archive
from model.blobstore import LocalBlobStore
from model.database import Database
from model.users import Users


@dataclass
class Site:
    database: Database
    archive: Archive
    users: Users

    def close(self) -> None:
        self.database.dispose()


def open_site(database_url: str, storage_path, migrate: bool = True,
              staged_ttl_s: float | None = None) -> Site:
    database = Database(database_url)
    if migrate:
        database.migrate()
    archive = Archive(database, LocalBlobStore(storage_path), staged_ttl_s)
    return Site(database, archive, Users(database))


def open_configured_site(config, migrate: bool = True) -> Site:
    """The site described by a `skyrelay.config.Config` (anything with `database_url`,
    `storage_path` and `["importer.staged_ttl_s"]`)."""
    return open_site(config.database_url, config.storage_path, migrate=migrate,
                     staged_ttl_s=config["importer.staged_ttl_s"])
