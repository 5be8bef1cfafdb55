"""The answers gunicorn gives by itself, in the one JSON error shape, each logged as a request.

Some requests never reach the app: gunicorn refuses a request line over 4 KiB (414), a
header line over 8 KiB or more than 100 headers (431), a malformed header such as one with a
control character in its value (400), and writes an HTML page for it. Which status, reason
and message a refusal gets is gunicorn's decision (`Worker.handle_error`), and it hands them
to `gunicorn.util.write_error` to be written. `install` replaces that one function, in a
worker process, with `write_json_error`: the decision stays gunicorn's, the body is
`{"state": "failed", "message": …}` as from the app (`importer.errors`). The limits stay as
they are: raising them would let any client make a worker hold megabytes of headers.

The app never sees these requests, so their access line is written here (`access_log.record`),
with what gunicorn knows of the request: often only the status, as a request whose line or
headers could not be read has no method or path yet.
"""

import json
import threading
from contextlib import contextmanager

from gunicorn import util

from importer import access_log
from importer.errors import error_body

_refusing = threading.local()     # the request being refused, in the thread refusing it


@contextmanager
def refusing(req):
    """While gunicorn refuses `req` (None when its request line could not be read): the
    access line of `write_json_error` names its method and path."""
    _refusing.request = req
    try:
        yield
    finally:
        _refusing.request = None


def write_json_error(sock, status: int, reason: str, message: str) -> None:
    """`gunicorn.util.write_error`, answering in JSON; logged first, so that a client gone
    before the answer is written is still on record."""
    body = json.dumps(error_body(message or reason), separators=(",", ":")).encode() + b"\n"
    head = (f"HTTP/1.1 {status} {reason}\r\n"
            "Connection: close\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    req = getattr(_refusing, "request", None)
    access_log.record(getattr(req, "method", None) or "-", getattr(req, "path", None) or "-",
                      status, len(body), None)
    util.write_nonblock(sock, head + body)


def install() -> None:
    """Answer every error gunicorn writes in this process with `write_json_error`."""
    util.write_error = write_json_error
