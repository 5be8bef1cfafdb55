"""A site's storage: the database, the blob store and every store built on them, each made
once and shared by whatever asks (a command, the importer's routes, a sync).

Nothing else constructs a store for a running site, so each is configured in one place from
the site's settings (anything with `["importer.upload_ttl_s"]` and the like: the site's
`skyrelay.config.Config`, where every default is declared).
"""

from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from model.archive.archive import Archive
from model.archive.catalog import Catalog
from model.export.locks import SyncLocks
from model.export.queue import ExportQueue
from model.export.targets import Targets
from model.export.upload_urls import UploadUrls
from model.ops.jobs import Jobs
from model.ops.traces import Traces
from model.ops.users import Users
from model.store.blobs import BlobStore
from model.store.database import Database
from model.store import object_store, s3_blobs
from model.store.object_store import ObjectStoreError
from model.store.local_blobs import LocalBlobStore
from model.uploads.resumable import Uploads


class Site:
    def __init__(self, database: Database, storage_path: str | Path,
                 settings: Mapping[str, Any]):
        self.database = database
        self.storage_path = Path(storage_path)
        self.settings = settings

    @cached_property
    def blobs(self) -> BlobStore:
        """A local folder, or an object store with this host's own spool folder."""
        if self.settings["storage.backend"] == "s3":
            return s3_blobs.open_store(self.settings, self.storage_path / "spool",
                                       self.database)
        return LocalBlobStore(self.storage_path)

    @cached_property
    def archive(self) -> Archive:
        return Archive(self.database, self.blobs, self.settings["importer.staged_ttl_s"])

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.database)

    @cached_property
    def uploads(self) -> Uploads:
        return Uploads(self.database, self.archive, self.storage_path / "uploads",
                       ttl_s=self.settings["importer.upload_ttl_s"],
                       max_bytes=self.settings["importer.max_file_bytes"])

    @cached_property
    def users(self) -> Users:
        return Users(self.database)

    @cached_property
    def targets(self) -> Targets:
        return Targets(self.database)

    @cached_property
    def queue(self) -> ExportQueue:
        return ExportQueue(self.database)

    @cached_property
    def locks(self) -> SyncLocks:
        return SyncLocks(self.database)

    @cached_property
    def upload_urls(self) -> UploadUrls:
        return UploadUrls(self.database)

    @cached_property
    def traces(self) -> Traces:
        return Traces(self.database)

    @cached_property
    def jobs(self) -> Jobs:
        return Jobs(self.database)

    def close(self) -> None:
        self.database.dispose()


def open_site(config, migrate: bool = True) -> Site:
    """The site a `skyrelay.config.Config` describes (anything with `database_url`,
    `storage_path` and `[key]`), its pending migrations applied unless `migrate` is False.
    Raises `ObjectStoreError`, naming the setting, when the object store cannot be used."""
    site = Site(Database(config.database_url), config.storage_path, config)
    if config["storage.backend"] == "s3":
        try:
            object_store.check(site.blobs.client, config)
        except ObjectStoreError:
            site.close()
            raise
    if migrate:
        site.database.migrate()
    return site
