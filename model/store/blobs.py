"""What a blob store is, whatever keeps the bytes: the interface every caller uses, and the
one write path's rule that received bytes count only when their MD5 is the expected one.

Blobs are named by their SHA-256, so identical bytes are stored once. Every way in hashes
the bytes as they pass (MD5 and SHA-256 in the same pass) and hands back a `PendingBlob`:
nothing is a blob until the caller commits it, and `Digests.checked` is the only place that
compares a received MD5 with the expected one, so a blob with the wrong bytes cannot be
committed by any path. A store keeps two kinds of bytes in the making:
- a stream written in one go (`write`): a version 1 upload, a part of `/blobs`, a bundle's
  data member;
- a `Partial`, bytes that arrive in chunks over many requests (a resumable upload), named by
  the caller and kept until it is sealed into a pending blob or removed.

`model.store.local_blobs.LocalBlobStore` keeps them in a folder; a store on an object store
implements the same interface.
"""

import hashlib
import queue
import threading
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable, Iterator

from model.protocol.errors import Invalid, OverLimit
from model.store import resumable_hash

CHUNK = 1024 * 1024

# MD5 is the slowest step of receiving a large file (slower than SHA-256 with CPU support,
# and than writing to the page cache). hashlib lets go of the GIL while it hashes, so inside
# `Digests.md5_behind` the MD5 runs on a thread of its own, up to MD5_LAG blocks behind the
# thread that receives and writes (with one block of slack, one thread idles whenever the
# other loses its core).
MD5_LAG = 4


class TooLarge(OverLimit):
    """The stream went past the size limit; nothing was kept."""

    def __init__(self, limit: int):
        super().__init__(f"larger than the limit of {limit} bytes")
        self.limit = limit


class LostBytes(Exception):
    """A partial holds fewer bytes than its upload's offset says (a store that lost them)."""


class Md5Mismatch(Invalid):
    """The bytes' MD5 is not the one expected: some byte is wrong; nothing was kept."""

    digest = "MD5"

    def __init__(self, actual: str, expected: str, size: int):
        super().__init__(f"{self.digest} of the received bytes is {actual}, expected "
                         f"{expected}")
        self.actual, self.expected, self.size = actual, expected, size


class Sha256Mismatch(Md5Mismatch):
    """The MD5 was right but the SHA-256 the client announced is not the bytes': nothing was
    kept (the bytes would have been named by someone else's blob)."""

    digest = "SHA-256"


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    md5: str
    size: int


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
    """The running MD5 and SHA-256 of the first `offset` bytes of a blob in the making."""

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

    @classmethod
    def resumable(cls) -> "Digests":
        """Digests whose state can be `saved` and `restored` elsewhere (a resumable upload
        whose next chunk may go to another host)."""
        return cls(0, resumable_hash.md5(), resumable_hash.sha256())

    def saved(self) -> bytes:
        """The state of resumable digests (not the offset: the caller keeps that)."""
        return self._md5.state() + self.sha256.state()

    @classmethod
    def restored(cls, offset: int, saved: bytes) -> "Digests":
        split = len(resumable_hash.md5().state())
        return cls(offset, resumable_hash.md5(saved[:split]),
                   resumable_hash.sha256(saved[split:]))

    def copy(self) -> "Digests":
        return Digests(self.offset, self._md5.copy(), self.sha256.copy())

    def checked(self, expected_md5: str | None, expected_sha256: str | None = None) -> BlobInfo:
        """What was hashed, if its MD5 is `expected_md5` (None: whatever it is) and its
        SHA-256 is `expected_sha256` (if the client announced one); else Md5Mismatch or
        Sha256Mismatch. The one comparison of received with expected digests."""
        info = BlobInfo(self.sha256.hexdigest(), self.md5_hex(), self.offset)
        if expected_md5 is not None and info.md5 != expected_md5:
            raise Md5Mismatch(info.md5, expected_md5, info.size)
        if expected_sha256 is not None and info.sha256 != expected_sha256:
            raise Sha256Mismatch(info.sha256, expected_sha256, info.size)
        return info


def chunks_of(source: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    """A file-like source read in CHUNKs, or an iterable of byte strings as it is."""
    if hasattr(source, "read"):
        while chunk := source.read(CHUNK):
            yield chunk
    else:
        yield from source


def check_stream(source: BinaryIO | Iterable[bytes], expected_md5: str) -> BlobInfo:
    """Hash a stream that is not to be kept (bytes already held): Md5Mismatch if it is not
    what it should be."""
    digests = Digests()
    for chunk in chunks_of(source):
        digests.update(chunk)
    return digests.checked(expected_md5)


class PendingBlob(ABC):
    """Bytes written and hashed, not yet a blob. Use as a context manager: leaving it
    discards whatever was not committed."""

    info: BlobInfo

    @abstractmethod
    def commit(self) -> None:
        """Make it the blob `info.sha256` (the same bytes already there stay one copy)."""

    @abstractmethod
    def discard(self) -> None:
        """Forget the bytes; a no-op after commit."""

    def __enter__(self) -> "PendingBlob":
        return self

    def __exit__(self, *exc_info) -> None:
        self.discard()


# `readinto(view)` fills the memoryview from a request body and returns the count, fewer only
# at the end of the body (or when the client went away).
ReadInto = Callable[[memoryview], int]


class Partial(ABC):
    """The bytes of one resumable upload so far. The caller holds the upload's lock and
    knows its offset; bytes past the offset are leftovers of a chunk that was dropped.

    A chunk's bytes count once the caller has recorded the new offset; it does so in a
    transaction that also takes `record_written(tx)`, so a store that keeps its own ledger
    of the bytes (an object store's parts) moves in step with the offset."""

    @abstractmethod
    def create(self, length: int, sha256: str | None = None) -> None:
        """Start (or start again) with no bytes, for an upload of `length` bytes; `sha256`
        is what the client says the whole file's SHA-256 will be (checked at `seal`)."""

    @abstractmethod
    def exists(self) -> bool: ...

    @abstractmethod
    def digests(self, offset: int) -> Digests:
        """The digests of the first `offset` bytes (the partial's are restored or hashed
        again: after a restart, or when the previous chunk went to another process).
        Raises `LostBytes` if fewer than `offset` bytes are there."""

    def record_written(self, tx) -> None:
        """Record, in the caller's transaction `tx`, what the last `write_at` wrote (nothing
        to do where the bytes themselves are the record)."""

    @abstractmethod
    def write_at(self, offset: int, readinto: ReadInto, want: int, digests: Digests,
                 chunk_hash=None) -> int:
        """Write up to `want` bytes from `readinto` at `offset` (cutting off what lay beyond),
        each block hashed into `digests` (and `chunk_hash`), durable on return; returns the
        count written."""

    @abstractmethod
    def truncate(self, size: int) -> None: ...

    @abstractmethod
    def seal(self, digests: Digests, expected_md5: str,
             expected_sha256: str | None = None) -> PendingBlob:
        """The complete bytes as a pending blob, if `digests` (of all of them) has the
        expected MD5 and SHA-256 (else Md5Mismatch or Sha256Mismatch, and the partial is left
        as it is)."""

    @abstractmethod
    def remove(self) -> None: ...


@dataclass(frozen=True)
class Temporary:
    """One thing a write that never ended left: a file, an object or a multipart upload.
    `size` is its bytes where the listing tells them (0 where it does not: an object store's
    multipart upload); `remove` removes it and says whether it was still there."""
    name: str
    size: int
    remove: Callable[[], bool] = field(compare=False, repr=False)


class BlobStore(ABC):
    """Everything callers do with blobs; nothing reaches past it to where bytes live."""

    @abstractmethod
    def write(self, source: BinaryIO | Iterable[bytes], md5: str | None = None,
              limit: int | None = None, durable: bool = True) -> PendingBlob:
        """Stream `source` to a temporary place while hashing it. Raises TooLarge past
        `limit` and Md5Mismatch when `md5` is given and is not the bytes' MD5 (nothing is
        kept either way). With `durable=False` the bytes are durable only after `sync()`."""

    @abstractmethod
    def sync(self) -> None:
        """Make every write so far durable."""

    @abstractmethod
    def partial(self, name: str) -> Partial:
        """The resumable bytes called `name` (whether or not they exist yet)."""

    @abstractmethod
    def partials(self) -> Iterator[tuple[str, float]]:
        """(name, modification time) of every partial."""

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO: ...

    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    def existing(self, shas: Iterable[str]) -> set[str]:
        """Those of `shas` that are blobs (a store whose every lookup is a round trip asks
        for several at once)."""
        return {sha for sha in shas if self.exists(sha)}

    @abstractmethod
    def delete(self, sha256: str) -> None: ...

    @abstractmethod
    def list(self) -> Iterator[tuple[str, float]]:
        """(sha256, modification time) of every committed blob."""

    @abstractmethod
    def stale_temporaries(self, older_than_s: float,
                          beside_blobs: bool = True) -> "list[Temporary]":
        """What writes that never ended (a crash) left, untouched for `older_than_s`: the one
        rule of what is stale, which `gc --dry-run` lists and the real run removes. Without
        `beside_blobs`, only where looking is cheap: a small blob's temporary sits in its
        blob's own folder, and finding those means reading every folder of the store."""

    def remove_stale_temporaries(self, older_than_s: float, beside_blobs: bool = True) -> int:
        """Remove the stale temporaries; returns how many (`remove_temporaries` says which)."""
        return len(self.remove_temporaries(self.stale_temporaries(older_than_s, beside_blobs)))

    @staticmethod
    def remove_temporaries(temporaries: Iterable[Temporary]) -> "list[Temporary]":
        """Remove these; returns those removed (one committed or removed since it was listed
        is not counted)."""
        return [temporary for temporary in temporaries if temporary.remove()]

