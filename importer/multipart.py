"""A pull-style streaming reader of multipart/form-data bodies, part by part.

werkzeug's form parser reads the whole body before the view sees any of it (small parts in
memory). `/blobs` wants each part's bytes as they arrive, to hash and store them one part at
a time, so this wraps werkzeug's sans-IO `MultipartDecoder` into an iterator of
(part name, iterator of its bytes).
"""

from typing import Callable, Iterator

from werkzeug.sansio.multipart import (NEED_DATA, Data, Epilogue, Field, File,
                                       MultipartDecoder)

READ_SIZE = 256 * 1024
# The decoder buffers a preamble or part headers until they are complete; this bounds that.
MAX_HEADER_BYTES = 64 * 1024


class MultipartError(ValueError):
    """The body is not well-formed multipart (or ended before its closing boundary)."""


def iter_parts(read: Callable[[int], bytes], boundary: bytes
               ) -> Iterator[tuple[str, Iterator[bytes]]]:
    """Yield (name, data) per part. Consume `data` (or not) before asking for the next part:
    whatever is left of it is skipped."""
    events = _events(read, MultipartDecoder(boundary))
    pending = next(events, None)
    while pending is not None:
        if isinstance(pending, Epilogue):
            return
        if not isinstance(pending, (Field, File)):
            pending = next(events, None)
            continue
        part = _Part(events)
        yield pending.name or "", part
        pending = part.finish()


class _Part:
    """The bytes of one part; `finish` skips what the consumer left and returns the event
    that follows the part."""

    def __init__(self, events: Iterator):
        self._events = events
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        while not self._done:
            event = next(self._events, None)
            if not isinstance(event, Data):
                raise MultipartError("multipart part without data")
            self._done = not event.more_data
            if event.data:
                yield event.data

    def finish(self):
        for _ in self:
            pass
        return next(self._events, None)


def _events(read: Callable[[int], bytes], decoder: MultipartDecoder) -> Iterator:
    while True:
        try:
            event = decoder.next_event()
        except ValueError as exc:
            if decoder.complete:
                raise MultipartError("the multipart body ended before its closing boundary") \
                    from exc
            raise MultipartError(f"malformed multipart body: {exc}") from exc
        if event is NEED_DATA:
            if decoder.complete:
                raise MultipartError("the multipart body ended before its closing boundary")
            if len(decoder.buffer) > MAX_HEADER_BYTES:
                raise MultipartError(f"no boundary or part headers within {MAX_HEADER_BYTES} "
                                     "bytes")
            decoder.receive_data(_read_not_ending_in_dash(read) or None)
            continue
        yield event
        if isinstance(event, Epilogue):
            return


def _read_not_ending_in_dash(read: Callable[[int], bytes]) -> bytes:
    """werkzeug's decoder (3.1) mistakes a buffer ending in `--boundary-` for data and
    emits the CR before it as part of the last part; never hand it a read that ends in a dash
    while more is coming."""
    data = read(READ_SIZE)
    while data.endswith(b"-") and len(data) < 4 * READ_SIZE:
        more = read(READ_SIZE)
        if not more:
            break
        data += more
    return data
