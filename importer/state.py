"""What the importer's routes share within one app, reached through `current()`: the site
(which holds every store), the settings, and the per-process caches of the request path."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from flask import Flask, current_app

from importer.auth import CredentialCache
from importer.entity_cache import EntityCache
from model.site import Site

if TYPE_CHECKING:
    from importer.ingest_pool import IngestPool

_KEY = "skyrelay"


@dataclass
class Importer:
    settings: Mapping[str, Any]
    site: Site
    credentials: CredentialCache
    cache: EntityCache
    ingest_pool: "IngestPool | None" = None     # started by the bundles routes

    def attach(self, app: Flask) -> None:
        app.extensions[_KEY] = self

    @staticmethod
    def of(app: Flask) -> "Importer":
        return app.extensions[_KEY]


def current() -> Importer:
    """The importer of the app handling this request."""
    return Importer.of(current_app)
