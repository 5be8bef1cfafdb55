"""A site opened in a test from a database URL and a blob folder, every other setting at its
default (or as given, by its dotted key)."""

from pathlib import Path

from exporter.sync import SyncSettings
from model.site import Site, open_site
from skyrelay import config as config_module


def open_test_site(database_url: str, storage_path: str | Path, migrate: bool = True,
                   **settings) -> Site:
    config = config_module.from_values({"database.url": database_url,
                                        "storage.path": str(storage_path),
                                        **{key.replace("__", "."): value
                                           for key, value in settings.items()}})
    return open_site(config, migrate=migrate)


def sync_settings(**overrides) -> SyncSettings:
    """A sync's settings at their defaults, with `overrides` by field name."""
    return SyncSettings.from_config(config_module.from_values({}), **overrides)
