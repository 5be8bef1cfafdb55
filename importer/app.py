"""The importer's Flask app factory. No module-level app, engine or session: every app gets
its own site storage, so tests and gunicorn workers each make theirs."""

from dataclasses import dataclass
from typing import Any, Mapping

from flask import Flask

from importer import (access_log, bundles, import_routes, read_api, targets_api, traces_api,
                      users_api)
from importer.auth import CredentialCache
from importer.entity_cache import EntityCache
from importer.errors import register_error_handlers
from model.catalog import Catalog
from model.site import Site, open_configured_site


@dataclass
class Importer:
    """What the routes share, reachable as `current_app.extensions["skyrelay"]`."""
    settings: Mapping[str, Any]
    site: Site
    credentials: CredentialCache
    cache: EntityCache
    catalog: Catalog


def create_app(config, site: Site | None = None) -> Flask:
    """`config` is a `skyrelay.config.Config` (anything with `[key]`, `database_url` and
    `storage_path`); `site` may be given by a test that already opened the storage."""
    site = site or open_configured_site(config)
    app = Flask("skyrelay.importer")
    app.json.sort_keys = False
    app.extensions["skyrelay"] = Importer(
        settings=config, site=site,
        credentials=CredentialCache(site.users, config["importer.auth_cache_s"]),
        cache=EntityCache(config["importer.cache_size"]), catalog=Catalog(site.database))
    register_error_handlers(app)
    access_log.install(app)
    for blueprint in _blueprints(config["importer.url_path"]):
        app.register_blueprint(blueprint)
    return app


def _blueprints(url_path: str) -> list:
    """Each capability is one blueprint module; the handshake ones live under `url_path`."""
    from importer import batch, blobs, capabilities, uploads
    return [import_routes.blueprint(url_path), read_api.blueprint(), users_api.blueprint(),
            targets_api.blueprint(), bundles.blueprint(), traces_api.blueprint(),
            capabilities.blueprint(url_path), batch.blueprint(url_path),
            blobs.blueprint(url_path), uploads.blueprint(url_path)]
