"""One JSON error shape for every answer that is not a success: `{"state", "message"}`, and
one table that says which HTTP answer each domain error gets.

Handlers are registered once on the app. A route lets a domain error (a `SkyrelayError` from
`model`) propagate and `TRANSLATIONS` picks its status; a refusal that only HTTP knows about
(401, 403, 415, a body that is not JSON) is an `ApiError`; werkzeug raises its own 404/405/413.
No route translates errors itself. What gunicorn refuses before the app sees a request is
answered in the same shape by `importer.server_errors`.
"""

import logging
from dataclasses import dataclass
from typing import Callable

from flask import Flask, jsonify
from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.exceptions import HTTPException

from model.protocol.errors import Busy, Conflict, Invalid, NotFound, OverLimit, SkyrelayError
from model.protocol.vocabulary import FAILED
from model.store.database import DatabaseBusy
from model.uploads.resumable import (ChecksumMismatch, OffsetMismatch, UploadBusy, UploadGone,
                                     WholeFileMismatch)

log = logging.getLogger("skyrelay.importer")

CHECKSUM_MISMATCH = "460 Checksum Mismatch"   # tus's own status; werkzeug has no name for 460
RETRY_SHORTLY = {"Retry-After": "1"}


def error_body(message: str, **extra) -> dict:
    return {"state": FAILED, "message": message, **extra}


def _always(headers: dict[str, str]) -> Callable[[SkyrelayError], dict[str, str]]:
    return lambda error: dict(headers)


@dataclass(frozen=True)
class Translation:
    """How errors of `kind` are answered over HTTP."""
    kind: type[SkyrelayError]
    status: int | str                  # a string carries its own reason phrase
    headers: Callable[[SkyrelayError], dict[str, str]] = _always({})
    message: str | None = None         # said instead of str(error), which is not for clients


# First match wins, so the specific errors come before the kinds. Among the kinds, Invalid is
# last: a domain family derives from Invalid and marks its members NotFound or Conflict too
# (UnknownTarget is a TargetError and a NotFound), and the narrower kind must decide.
TRANSLATIONS: tuple[Translation, ...] = (
    Translation(UploadGone, 410),
    Translation(UploadBusy, 423, _always(RETRY_SHORTLY)),
    Translation(ChecksumMismatch, CHECKSUM_MISMATCH),
    Translation(WholeFileMismatch, CHECKSUM_MISMATCH),
    # A tus client resumes from the offset the server holds, so the answer says which it is.
    Translation(OffsetMismatch, 409, lambda error: {"Upload-Offset": str(error.held)}),
    # The driver's message ("database is locked") names internals; the client only needs
    # to know it may retry.
    Translation(DatabaseBusy, 503, _always(RETRY_SHORTLY),
                message="the database is busy; retry shortly"),
    Translation(NotFound, 404),
    Translation(Conflict, 409),
    Translation(OverLimit, 413),
    Translation(Busy, 503, _always(RETRY_SHORTLY)),
    Translation(Invalid, 400),
)


# gunicorn decodes a chunked body while the app reads it, so a malformed chunk, or a body
# that ends before its last chunk, is raised in the route that reads: the client's fault.
UNREADABLE_BODY = (ParseException, NoMoreData)


def translation_of(error: SkyrelayError) -> Translation | None:
    """The first row of `TRANSLATIONS` that `error` is an instance of; None if no row is."""
    return next((row for row in TRANSLATIONS if isinstance(error, row.kind)), None)


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
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(SkyrelayError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    for unreadable in UNREADABLE_BODY:
        app.register_error_handler(unreadable, _unreadable_body)
    app.register_error_handler(Exception, _unexpected)


def _api_error(error: ApiError):
    return jsonify(error_body(error.message, **error.extra)), error.status, error.headers


def _domain_error(error: SkyrelayError):
    row = translation_of(error)
    if row is None:                    # a domain error of no kind is a bug, not a refusal
        return _unexpected(error)
    return jsonify(error_body(row.message or str(error))), row.status, row.headers(error)


def _http_error(error: HTTPException):
    headers = dict(error.get_headers())
    headers.pop("Content-Type", None)
    return jsonify(error_body(error.description or error.name)), error.code, headers


def _unreadable_body(error: Exception):
    return jsonify(error_body(f"body: could not be read ({type(error).__name__}: "
                              f"{str(error)[:120]})")), 400


def _unexpected(error: Exception):
    log.exception("unexpected error")
    return jsonify(error_body(f"internal error: {type(error).__name__}")), 500
