"""Large request bodies read straight from the connection, under gunicorn.

Gunicorn hands a body to the application through two BytesIO buffers and their slices:
several copies of every byte, costing as much CPU as hashing it, on the importer's one busy
path that moves gigabytes (a tus PATCH). `body_readinto` instead fills the caller's
buffer from the bytes gunicorn already holds and then from the socket itself, and keeps
gunicorn's count of the body's unread bytes exact, so keep-alive and pipelined requests go
on as before.

It applies only to a plain-socket gunicorn body of known length; anything else (another
server, TLS, a chunked body, a gunicorn whose internals changed) gets the WSGI stream,
read the ordinary way.
"""

import io
import socket
from typing import Callable

from werkzeug.exceptions import ClientDisconnected

ReadInto = Callable[[memoryview], int]


def body_readinto(environ: dict, stream, timeout_s: float) -> ReadInto:
    """`readinto(view)`: fills the view from the request body and returns the count, fewer
    only at the end of the body or when the client went away (then what arrived counts).
    A client silent for `timeout_s` counts as gone."""
    direct = _GunicornBody.of(environ, timeout_s)
    return direct.readinto if direct is not None else _stream_readinto(stream)


def _stream_readinto(stream) -> ReadInto:
    def readinto(view: memoryview) -> int:
        filled = 0
        while filled < len(view):
            try:
                block = stream.read(len(view) - filled)
            except (ClientDisconnected, OSError):
                break
            if not block:
                break
            view[filled:filled + len(block)] = block
            filled += len(block)
        return filled
    return readinto


class _GunicornBody:
    def __init__(self, body, reader, unreader, sock: socket.socket, timeout_s: float):
        self._body, self._reader, self._unreader = body, reader, unreader
        self._sock, self._timeout_s = sock, timeout_s
        self._held = b""        # bytes gunicorn had already read, handed out first

    @classmethod
    def of(cls, environ: dict, timeout_s: float) -> "_GunicornBody | None":
        body = environ.get("wsgi.input")
        sock = environ.get("gunicorn.socket")
        reader = getattr(body, "reader", None)
        unreader = getattr(reader, "unreader", None)
        usable = (type(sock) is socket.socket
                  and type(reader).__name__ == "LengthReader"
                  and isinstance(getattr(reader, "length", None), int)
                  and isinstance(getattr(body, "buf", None), io.BytesIO)
                  and callable(getattr(unreader, "take_buffered", None))
                  and callable(getattr(unreader, "unread", None)))
        if not usable:
            return None
        direct = cls(body, reader, unreader, sock, timeout_s)
        direct._take_what_gunicorn_holds()
        return direct

    def _take_what_gunicorn_holds(self) -> None:
        """Bytes of the body in gunicorn's buffers: those the body object read ahead, then
        the unreader's, of which anything past the body (a pipelined request) goes back."""
        self._held = self._body.buf.getvalue()
        self._body.buf = io.BytesIO()
        ahead = self._unreader.take_buffered()
        mine = ahead[:self._reader.length]
        if len(ahead) > len(mine):
            self._unreader.unread(ahead[len(mine):])
        self._reader.length -= len(mine)
        self._held += mine

    def readinto(self, view: memoryview) -> int:
        filled = min(len(self._held), len(view))
        if filled:
            view[:filled] = self._held[:filled]
            self._held = self._held[filled:]
        previous = self._sock.gettimeout()
        self._sock.settimeout(self._timeout_s)
        try:
            while filled < len(view) and self._reader.length > 0:
                want = min(len(view) - filled, self._reader.length)
                got = self._sock.recv_into(view[filled:filled + want])
                if not got:
                    break
                self._reader.length -= got
                filled += got
        except OSError:      # reset, or silent past the timeout: the client is gone, and
            self._body.failed = True     # gunicorn closes the connection instead of draining it
        finally:
            self._sock.settimeout(previous)
        return filled
