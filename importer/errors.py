"""One JSON error shape for every answer that is not a success: `{"state", "message"}`.

Handlers are registered once on the app, so a route raises `ApiError` (or lets werkzeug
raise 404/405/413) and never builds an error response itself.
"""

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from model.store.database import DatabaseBusy

log = logging.getLogger("skyrelay.importer")


def error_body(message: str, state: str = "failed", **extra) -> dict:
    return {"state": state, "message": message, **extra}


class ApiError(Exception):
    """An answer with an HTTP error status; `message` says what is wrong and where."""

    def __init__(self, status: int, message: str, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return jsonify(error_body(error.message, **error.extra)), error.status, error.headers

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        headers = dict(error.get_headers())
        headers.pop("Content-Type", None)
        return jsonify(error_body(error.description or error.name)), error.code, headers

    @app.errorhandler(DatabaseBusy)
    def busy(error: DatabaseBusy):
        return (jsonify(error_body("the database is busy; retry shortly")), 503,
                {"Retry-After": "1"})

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error")
        return jsonify(error_body(f"internal error: {type(error).__name__}")), 500
