"""One log line per request: method, path, status, bytes, milliseconds, user, trace ID.

The app logs the requests it answers (`install`); the requests gunicorn refuses before the
app sees them are logged by `record` too (`importer.server_errors`), in the same format."""

import logging
import time

from flask import Flask, g, request

log = logging.getLogger("skyrelay.access")


def record(method: str, path: str, status: int, size: int | None,
           elapsed_ms: float | None, user: str = "-", trace: str = "-") -> None:
    """Log one request; "-" stands for what is not known (no size, no time)."""
    elapsed = "-" if elapsed_ms is None else f"{elapsed_ms:.1f}"
    log.info("%s %s %s %s %sms user=%s trace=%s", method, path, status, size or "-", elapsed,
             user, trace)


def install(app: Flask) -> None:
    @app.before_request
    def start_clock():
        g.started = time.perf_counter()

    @app.after_request
    def log_request(response):
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        user = getattr(g.get("user"), "name", "-")
        record(request.method, request.path, response.status_code,
               response.calculate_content_length(), elapsed_ms, user,
               request.headers.get("X-Trace-Id", "-"))
        return response
