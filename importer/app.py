"""The importer's Flask app factory. No module-level app, engine or session: every app gets
its own site storage, so tests and gunicorn workers each make theirs."""

from flask import Flask

from importer import access_log, path_params
from importer.auth import CredentialCache
from importer.entity_cache import EntityCache
from importer.errors import register_error_handlers
from importer.routes import bundles, read, targets, traces, uploads, users, v1, v2
from importer.state import Importer
from model.site import Site, open_site


def create_app(config, site: Site | None = None) -> Flask:
    """`config` is a `skyrelay.config.Config` (anything with `[key]`, `database_url` and
    `storage_path`); `site` may be given by a test that already opened the storage."""
    site = site or open_site(config)
    # No static folder: the importer serves no files of its own (Flask would otherwise add
    # /static/<path:filename>, serving whatever a `static` folder beside it holds).
    app = Flask("skyrelay.importer", static_folder=None)
    app.json.sort_keys = False
    Importer(settings=config, site=site,
             credentials=CredentialCache(site.users, config["importer.auth_cache_s"]),
             cache=EntityCache(config["importer.cache_size"])).attach(app)
    register_error_handlers(app)
    access_log.install(app)
    path_params.install(app)
    for blueprint in _blueprints(config["importer.url_path"]):
        app.register_blueprint(blueprint)
    return app


def _blueprints(url_path: str) -> list:
    """Each capability is one blueprint module; the handshake ones live under `url_path`."""
    return [v1.blueprint(url_path), read.blueprint(), users.blueprint(),
            targets.blueprint(), bundles.blueprint(), traces.blueprint(),
            v2.blueprint(url_path), uploads.blueprint(url_path)]
