"""One log line per request: method, path, status, bytes, milliseconds, user, trace ID."""

import logging
import time

from flask import Flask, g, request

log = logging.getLogger("skyrelay.access")


def install(app: Flask) -> None:
    @app.before_request
    def start_clock():
        g.started = time.perf_counter()

    @app.after_request
    def log_request(response):
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        user = getattr(g.get("user"), "name", "-")
        log.info("%s %s %s %s %.1fms user=%s trace=%s", request.method, request.path,
                 response.status_code, response.calculate_content_length() or "-",
                 elapsed_ms, user, request.headers.get("X-Trace-Id", "-"))
        return response
