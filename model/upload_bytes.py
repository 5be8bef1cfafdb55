"""The bytes of a resumable upload: writing a chunk at the upload's offset while hashing it,
and the running digests that make the whole-file check free on the last byte."""

import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from model.blobstore import PageDropper

BLOCK = 1024 * 1024


class BodyTooLong(Exception):
    """The request body goes on past the upload's length."""


# MD5 is the slowest step of receiving a large file (slower than SHA-256 with CPU support,
# and than writing to the page cache). hashlib lets go of the GIL while it hashes, so the MD5
# of one block runs on a helper thread while the request's thread writes the block, updates
# the SHA-256 and reads the next one. Threads start on first use (after gunicorn's fork).
_MD5_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="skyrelay-md5")


class Digests:
    """The running MD5 and SHA-256 of an upload's first `offset` bytes."""

    def __init__(self, offset: int = 0, md5=None, sha256=None):
        self.offset = offset
        self._md5 = md5 or hashlib.md5()
        self.sha256 = sha256 or hashlib.sha256()
        self._md5_busy: Future | None = None

    def update(self, block: bytes) -> None:
        """Hash `block` (MD5 on a helper thread, one block in flight at most)."""
        self._wait()
        self._md5_busy = _MD5_THREADS.submit(self._md5.update, block)
        self.sha256.update(block)
        self.offset += len(block)

    def _wait(self) -> None:
        if self._md5_busy is not None:
            busy, self._md5_busy = self._md5_busy, None
            busy.result()

    def md5_hex(self) -> str:
        self._wait()
        return self._md5.hexdigest()

    def copy(self) -> "Digests":
        self._wait()
        return Digests(self.offset, self._md5.copy(), self.sha256.copy())


def write_chunk(path: Path, upload, readinto, declared: int | None, digests: Digests,
                chunk_hash) -> int:
    """Write the body at `upload.offset` (cutting off what lay beyond), updating the digests
    and `chunk_hash`; returns the bytes written. Raises BodyTooLong past the upload's end.

    `readinto(view)` fills the memoryview and returns how many bytes it got, fewer only at
    the end of the body. Blocks go through two alternating buffers, so no byte is copied in
    this process: one buffer fills while the MD5 of the other is still being computed."""
    room = upload.length - upload.offset
    want = room if declared is None else declared
    received = 0
    buffers = (memoryview(bytearray(BLOCK)), memoryview(bytearray(BLOCK)))
    with open(path, "r+b") as out, PageDropper(out, upload.offset) as pages:
        out.seek(upload.offset)
        out.truncate()
        turn = 0
        while received < want:
            view = buffers[turn % 2][:min(BLOCK, want - received)]
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
