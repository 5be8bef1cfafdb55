"""The importer app under a real HTTP server on a free loopback port, in a thread of the test
process (so a test can share the site's storage and look at it directly)."""

import threading
from contextlib import contextmanager

from werkzeug.serving import make_server

from importer.app import create_app
from importer.state import Importer
from skyrelay.config import load

PASSWORD = "correct horse battery"


def config_for(tmp_path, database_url: str, blob_root, **overrides):
    values = {"database.url": database_url, "storage.path": str(blob_root), **overrides}
    path = tmp_path / "config.yaml"
    path.write_text("{}\n")
    return load(path, overrides=values, environ={})


@contextmanager
def serving(config, site):
    """Yield the base URL of the running importer; stop it (and its ingest workers) after."""
    app = create_app(config, site=site)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        thread.join(timeout=10)
        Importer.of(app).ingest_pool.shutdown(wait=True)
