"""gunicorn's threaded worker, taking a new connection only after idle workers had a chance,
and answering the requests gunicorn itself refuses in the app's JSON error shape.

Every worker of `skyrelay serve` waits on the one listening socket, and whichever wakes first
accepts; a worker already busy with one connection often takes the next as well. Its threads
then share one interpreter lock while another worker, and its core, idle: an exporter's two
lanes landing on one worker sync markedly slower than on two. A worker that already holds
connections therefore waits a moment before it accepts, and a worker holding none, if there
is one, takes the connection first. If none is idle, the busy ones accept as before, a
moment later.

A request line or header gunicorn will not read (414, 431, 400) is refused before the app
sees it; `importer.server_errors` makes that answer JSON and logs it.
"""

import time

from gunicorn.workers.gthread import ThreadWorker

from importer import server_errors

# Long enough for an idle worker, woken by the same connection, to accept it first; short
# next to any request.
DEFER_WHEN_BUSY_S = 0.005


class BalancedThreadWorker(ThreadWorker):
    def init_process(self):
        server_errors.install()           # in this worker process, after the fork
        super().init_process()

    def accept(self, *args):
        if self.nr_conns and self.cfg.workers > 1:
            time.sleep(DEFER_WHEN_BUSY_S)
        return super().accept(*args)

    def handle_error(self, req, client, addr, exc):
        # A header gunicorn refuses after reading the request line may carry the request.
        with server_errors.refusing(req or getattr(exc, "req", None)):
            super().handle_error(req, client, addr, exc)
