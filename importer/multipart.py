"""A pull-style streaming reader of multipart/form-data bodies, part by part.

werkzeug's form parser reads the whole body before the view sees any of it (small parts in
memory). `/blobs` wants each part's bytes as they arrive, to hash and store them one part at
a time, so this reads the body in large blocks and cuts it at the boundaries itself: one
`bytes.find` per part instead of werkzeug's event decoder, whose per-part work would
dominate a `/blobs` request of many small files.
"""

import re
from typing import Callable, Iterator

from werkzeug.http import parse_options_header

READ_SIZE = 256 * 1024
# A preamble or a part's headers are held whole until they end; this bounds that.
MAX_HEADER_BYTES = 64 * 1024

# The common `form-data; name="…"` (no escapes): read without the general header parser.
_SIMPLE_NAME = re.compile(rb'(?:^|;)\s*name="([^"\\]*)"', re.IGNORECASE)


class MultipartError(ValueError):
    """The body is not well-formed multipart (or ended before its closing boundary)."""


def iter_parts(read: Callable[[int], bytes], boundary: bytes
               ) -> Iterator[tuple[str, Iterator[bytes]]]:
    """Yield (name, data) per part. Consume `data` (or not) before asking for the next part:
    whatever is left of it is skipped."""
    if not boundary:
        raise MultipartError("malformed multipart body: empty boundary")
    body = _Body(read, boundary)
    body.skip_preamble()
    while True:
        headers = body.part_headers()
        if headers is None:
            return
        part = _Part(body)
        yield _part_name(headers), part
        part.finish()


class _Body:
    """The request body as a buffer that is refilled in READ_SIZE blocks."""

    def __init__(self, read: Callable[[int], bytes], boundary: bytes):
        self._read = read
        self.dash_boundary = b"--" + boundary
        self.delimiter = b"\r\n--" + boundary       # what ends a part's data
        self.buffer = b""
        self.pos = 0
        self.ended = False

    def fill(self) -> bool:
        """Read one more block; False at the end of the body."""
        if self.ended:
            return False
        data = self._read(READ_SIZE)
        if not data:
            self.ended = True
            return False
        self.buffer = self.buffer[self.pos:] + data
        self.pos = 0
        return True

    def _truncated(self) -> MultipartError:
        return MultipartError("the multipart body ended before its closing boundary")

    def _too_long(self) -> MultipartError:
        return MultipartError(f"no boundary or part headers within {MAX_HEADER_BYTES} bytes")

    def skip_preamble(self) -> None:
        """Up to and including the first `--boundary` (at the start or after a CRLF)."""
        while True:
            if self.buffer.startswith(self.dash_boundary, self.pos):
                self.pos += len(self.dash_boundary)
                return
            found = self.buffer.find(self.delimiter, self.pos)
            if found >= 0:
                self.pos = found + len(self.delimiter)
                return
            if len(self.buffer) - self.pos > MAX_HEADER_BYTES:
                raise self._too_long()
            if not self.fill():
                raise self._truncated()

    def part_headers(self) -> list[bytes] | None:
        """After a boundary: the next part's header lines, or None after the closing one."""
        while len(self.buffer) - self.pos < 2:
            if not self.fill():
                raise self._truncated()
        if self.buffer.startswith(b"--", self.pos):
            return None                             # the closing boundary; the rest is epilogue
        while True:
            end = self.buffer.find(b"\r\n\r\n", self.pos)
            if end >= 0:
                break
            if len(self.buffer) - self.pos > MAX_HEADER_BYTES:
                raise self._too_long()
            if not self.fill():
                raise self._truncated()
        first_break = self.buffer.find(b"\r\n", self.pos)
        if self.buffer[self.pos:first_break].strip(b" \t"):
            raise MultipartError("malformed multipart body: text after the boundary")
        lines = self.buffer[first_break + 2:end].split(b"\r\n") if end > first_break else []
        self.pos = end + 4
        return lines

    def data(self) -> Iterator[bytes]:
        """The current part's bytes, in blocks, up to (not including) its delimiter; leaves
        the buffer just after the delimiter."""
        keep = len(self.delimiter) - 1
        while True:
            found = self.buffer.find(self.delimiter, self.pos)
            if found >= 0:
                chunk, self.pos = self.buffer[self.pos:found], found + len(self.delimiter)
                if chunk:
                    yield chunk
                return
            safe = len(self.buffer) - keep
            if safe > self.pos:
                chunk, self.pos = self.buffer[self.pos:safe], safe
                yield chunk
            if not self.fill():
                raise self._truncated()


class _Part:
    """The bytes of one part; `finish` skips what the consumer left."""

    def __init__(self, body: _Body):
        self._data = body.data()

    def __iter__(self) -> Iterator[bytes]:
        return self._data

    def finish(self) -> None:
        for _ in self._data:
            pass


def _part_name(lines: list[bytes]) -> str:
    for line in lines:
        key, colon, value = line.partition(b":")
        if not colon or key.strip().lower() != b"content-disposition":
            continue
        simple = _SIMPLE_NAME.search(value)
        if simple is not None:
            return simple.group(1).decode("utf-8", "replace")
        _, options = parse_options_header(value.decode("utf-8", "replace"))
        return options.get("name") or ""
    return ""
