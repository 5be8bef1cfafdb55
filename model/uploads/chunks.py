"""The bytes of a resumable upload: writing a chunk at the upload's offset while hashing it,
and the running digests that make the whole-file check free on the last byte."""

import hashlib
import os
import queue
import threading
from contextlib import contextmanager
from pathlib import Path

from model.store.blobs import PageDropper

BLOCK = 1024 * 1024


class BodyTooLong(Exception):
    """The request body goes on past the upload's length."""


# MD5 is the slowest step of receiving a large file (slower than SHA-256 with CPU support,
# and than writing to the page cache). hashlib lets go of the GIL while it hashes, so while a
# chunk streams in, the MD5 runs on a thread of its own, up to MD5_LAG blocks behind the
# request's thread, which writes each block, updates the SHA-256 and reads the next. With
# one block of slack (wait for each MD5 before handing over the next) one thread idled
# whenever the other lost its core, e.g. to the exporter on a two-core machine: 4% of a
# 1 GiB transfer.
MD5_LAG = 4


class _Md5Behind:
    """Updates `md5` with the blocks put, in order, on a helper thread; `put` waits while
    `lag` blocks are not hashed yet, so a caller may reuse a block's memory `lag` puts later."""

    def __init__(self, md5, lag: int):
        self._md5, self._blocks, self._room = md5, queue.SimpleQueue(), threading.Semaphore(lag)
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="skyrelay-md5", daemon=True)
        self._thread.start()

    def put(self, block) -> None:
        self._room.acquire()
        self._blocks.put(block)

    def close(self) -> None:
        """Wait until every block put is hashed."""
        self._blocks.put(None)
        self._thread.join()
        if self._failed is not None:
            raise self._failed

    def _run(self) -> None:
        while (block := self._blocks.get()) is not None:
            try:
                if self._failed is None:
                    self._md5.update(block)
            except BaseException as exc:          # reported by close(), in the caller
                self._failed = exc
            finally:
                self._room.release()


class Digests:
    """The running MD5 and SHA-256 of an upload's first `offset` bytes."""

    def __init__(self, offset: int = 0, md5=None, sha256=None):
        self.offset = offset
        self._md5 = md5 or hashlib.md5()
        self.sha256 = sha256 or hashlib.sha256()
        self._behind: _Md5Behind | None = None

    def update(self, block) -> None:
        """Hash `block`; inside `md5_behind()` its MD5 may still be pending on return."""
        if self._behind is not None:
            self._behind.put(block)
        else:
            self._md5.update(block)
        self.sha256.update(block)
        self.offset += len(block)

    @contextmanager
    def md5_behind(self):
        """Within the block, MD5 runs on a helper thread up to MD5_LAG blocks behind (a block
        given to `update` must stay unchanged for MD5_LAG more updates); on leaving, it has
        caught up."""
        self._behind = _Md5Behind(self._md5, MD5_LAG)
        try:
            yield self
        finally:
            behind, self._behind = self._behind, None
            behind.close()

    def md5_hex(self) -> str:
        return self._md5.hexdigest()

    def copy(self) -> "Digests":
        return Digests(self.offset, self._md5.copy(), self.sha256.copy())


def write_chunk(path: Path, upload, readinto, declared: int | None, digests: Digests,
                chunk_hash) -> int:
    """Write the body at `upload.offset` (cutting off what lay beyond), updating the digests
    and `chunk_hash`; returns the bytes written. Raises BodyTooLong past the upload's end.

    `readinto(view)` fills the memoryview and returns how many bytes it got, fewer only at
    the end of the body. Blocks go through MD5_LAG + 1 buffers in turn, so no byte is copied
    in this process, and a buffer is refilled only once the MD5 of its last block (which
    trails behind, see `Digests.md5_behind`) is done."""
    room = upload.length - upload.offset
    want = room if declared is None else declared
    received = 0
    buffers = [memoryview(bytearray(BLOCK)) for _ in range(MD5_LAG + 1)]
    with open(path, "r+b") as out, PageDropper(out, upload.offset) as pages, \
            digests.md5_behind():
        out.seek(upload.offset)
        out.truncate()
        turn = 0
        while received < want:
            view = buffers[turn % len(buffers)][:min(BLOCK, want - received)]
            turn += 1
            got = readinto(view)
            if not got:
                break
            block = view[:got]
            received += got
            out.write(block)
            digests.update(block)
            if chunk_hash is not None:
                chunk_hash.update(block)
            pages.wrote(got)
        if declared is None and received == room and room and readinto(bytearray(1)):
            raise BodyTooLong(f"the body goes past the upload's length {upload.length}")
        out.flush()
        os.fsync(out.fileno())
        pages.finish()
    return received


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)
