"""File bytes sent by the kernel (sendfile(2)) inside an ordinary `requests` call.

A tus chunk is hundreds of MiB read from the blob store: read into this process and written
to the socket, every byte would be copied twice, and on a camera's small CPU (or the cores
an exporter shares with an importer) those copies cost as much as hashing the bytes.
`socket.sendfile` hands the kernel the file and the range instead.

`requests` (through urllib3) gives each item of an iterable body to its connection's
`send()`. The adapter mounted by `mount_sendfile` makes connections whose `send()` passes a
`FileSpan` to `socket.sendfile`; any other connection gets the span's `read()` and sends it
block by block, as it would a file. TLS sockets copy either way (socket.sendfile falls back
to reading and sending), so the span is still correct there, only not faster.
"""

from typing import BinaryIO, Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from exporter import errors

# Bytes per sendfile call without a bandwidth limit: each piece first draws from the
# limit's bucket and counts as uploaded (progress).
PIECE = 8 * 1024 * 1024


class FileSpan:
    """`length` bytes of an open file from `offset`, sent in pieces of at most `piece` bytes,
    each drawn through `spend(n)` (the target's bandwidth limit and byte count) first."""

    def __init__(self, stream: BinaryIO, offset: int, length: int,
                 spend: Callable[[int], None], piece: int = PIECE):
        self._stream, self._offset, self._length, self._spend = stream, offset, length, spend
        self._piece, self._sent = piece, 0

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return True              # urllib3 skips empty chunks; an empty span has nothing to skip

    def send_to(self, sock) -> None:
        while piece := self._take(self._piece):
            if sock.sendfile(self._stream, self._offset + self._sent, piece) < piece:
                raise _short_file()
            self._sent += piece

    def read(self, size: int = -1) -> bytes:
        """The next bytes, for a connection that sends the span as it would a file."""
        piece = self._take(self._piece if size is None or size < 0 else size)
        if not piece:
            return b""
        self._stream.seek(self._offset + self._sent)
        data = self._stream.read(piece)
        if len(data) < piece:
            raise _short_file()
        self._sent += piece
        return data

    def _take(self, most: int) -> int:
        """The size of the next piece (0 at the end), once the bandwidth limit allows it."""
        piece = min(most, self._length - self._sent)
        if piece > 0:
            self._spend(piece)
        return piece


class SpanBody:
    """A request body of one span: an iterable with a length, so `requests` sends a
    Content-Length and urllib3 hands the span to the connection's `send()`. (Not the span
    itself: urllib3 reads any body that has `read()` in 16 KiB blocks.)"""

    def __init__(self, span: FileSpan):
        self.span = span

    def __len__(self) -> int:
        return len(self.span)

    def __iter__(self):
        yield self.span


def _short_file() -> errors.FinalError:
    return errors.FinalError("the file is shorter than its record says")


class _SendfileMixin:
    def send(self, data) -> None:
        if isinstance(data, FileSpan):
            data.send_to(self.sock)
        else:
            super().send(data)


class _HTTPConnection(_SendfileMixin, HTTPConnection):
    pass


class _HTTPSConnection(_SendfileMixin, HTTPSConnection):
    pass


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _SendfileAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPConnectionPool,
                                                   "https": _HTTPSConnectionPool}


def mount_sendfile(session: requests.Session) -> None:
    """Let `session` send `FileSpan` body items with sendfile(2)."""
    for prefix in ("http://", "https://"):
        session.mount(prefix, _SendfileAdapter())
