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


def open_site(database_url: str, storage_path, migrate: bool = True) -> Site:
    database = Database(database_url)
    if migrate:
        database.migrate()
    archive = Archive(database, LocalBlobStore(storage_path))
    return Site(database, archive, Users(database))
