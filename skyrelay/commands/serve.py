"""`skyrelay serve`: the importer under gunicorn.

Migrations are applied once, in the master, before any worker starts; the temporary files
a process that died mid-write left (untouched for `gc.grace_s`) are removed then too. The
app is not preloaded: each worker calls the app factory after the fork, so each opens its
own database engine (connections must never cross a fork). The master prints the address it
actually bound (`listening on http://HOST:PORT`) on stdout, so `--port 0` is usable by
scripts and tests. Every worker logs one access line per request to stderr; gunicorn's own
access log stays off so that each request is logged once. The workers are gunicorn's
threaded ones, which let an idle worker take a new connection first
(`importer.balanced_worker`).
"""

import logging
import sys

import click
from gunicorn.app.base import BaseApplication

from model.store.object_store import ObjectStoreError
from skyrelay import heap
from skyrelay.commands.context import pass_context

# How long a stopping worker may finish its requests, in seconds.
GRACEFUL_TIMEOUT_S = 10
# What gunicorn reads of a request before refusing it (414, 431), pinned here rather than
# left to its defaults of the day: docs/protocol.md names them. The refusals are JSON
# (`importer.server_errors`); raising the limits would only let a client make a worker hold
# more.
REQUEST_LIMITS = {"limit_request_line": 4094,          # bytes of the request line
                  "limit_request_fields": 100,         # header lines
                  "limit_request_field_size": 8190}    # bytes of one header line
LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


class ImporterServer(BaseApplication):
    """gunicorn driven from Python: options from the site's settings, the app per worker."""

    def __init__(self, config, host: str, port: int, workers: int):
        self.site_config = config
        self.options = {
            "bind": f"{_host_for_bind(host)}:{port}",
            "workers": workers,
            "threads": config["importer.threads"],
            "worker_class": "importer.balanced_worker.BalancedThreadWorker",
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            "graceful_timeout": GRACEFUL_TIMEOUT_S,
            "preload_app": False,
            "when_ready": _announce,
            "proc_name": f"skyrelay-{config['site.name']}",
            **REQUEST_LIMITS,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 24 opens a control socket at one fixed path per user; several
            # sites on one machine would fight over it, and skyrelay does not use it.
            self.cfg.set("control_socket_disable", True)

    def load(self):
        """Called in each worker after the fork: its own engine, its own caches."""
        from importer.app import create_app
        from model.site import open_site

        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=LOG_FORMAT)
        site = open_site(self.site_config, migrate=False)
        app = create_app(self.site_config, site)
        heap.settle_after_start()
        heap.keep_large_buffers_apart()
        return app


def _host_for_bind(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _remove_stale_temporaries(site, grace_s: float) -> None:
    """What a process that died left mid-write, as `gc` removes it: only temporaries
    untouched for `gc.grace_s`, so that the writes in flight of a sibling (another `serve` on
    the same folder, another host on the same bucket) are never touched. Only where looking
    is cheap (`beside_blobs=False`): the large ones; a small blob's temporaries (at most
    1 MiB each) are `gc`'s, as finding them reads every blob folder (seconds on a large
    archive, before the server can answer). Housekeeping: a store that fails here is
    reported, and the server starts all the same."""
    try:
        removed = site.blobs.remove_stale_temporaries(grace_s, beside_blobs=False)
    except (ObjectStoreError, OSError) as exc:
        click.echo(f"warning: stale temporary files not removed: {exc}", err=True)
        return
    if removed:
        click.echo(f"removed {removed} stale temporary files (untouched for {grace_s} s, "
                   "gc.grace_s) left by a process that stopped mid-write", err=True)


def _announce(arbiter) -> None:
    """gunicorn's `when_ready` hook: the sockets are bound, workers are about to start."""
    for listener in arbiter.LISTENERS:
        host, port = listener.sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"listening on http://{shown}:{port}", flush=True)


@click.command()
@click.option("--host", default=None, metavar="HOST",
              help="Address to bind (default: importer.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Port to listen on; 0 picks a free one (default: importer.port).")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Worker processes (default: importer.workers).")
@pass_context
def serve(ctx, host, port, workers):
    """Run the importer: the import handshake, uploads and the read API."""
    config = ctx.config
    # Opening the site applies pending migrations: once, here, before the fork, as is the
    # removal of what a dead process left mid-write. The site's engine is then closed so that
    # no connection is inherited by the workers.
    _remove_stale_temporaries(ctx.site, config["gc.grace_s"])
    ctx.site.close()
    ImporterServer(config,
                   host or config["importer.host"],
                   config["importer.port"] if port is None else port,
                   workers or config["importer.workers"]).run()
