"""The heap of long-running processes: garbage collection for processes that parse and build
many small JSON objects, and glibc's allocator for those that move large buffers.

CPython's cycle collector runs after every 700 new container objects, and about every
hundredth run walks every object alive. A version 2 batch parses into thousands of dicts
and lists, so every few batches a parse in an importer worker also walked the whole heap
(SQLAlchemy, Flask, the entity cache), which took many times the parse itself. Objects made
at start-up live as long as the process, so they are moved out of the collector's sight
once start-up is done. (Collecting less often as well saved no more time, and left an
exporter holding more uncollected garbage by the end of a large sync.)
"""

import ctypes
import gc

# glibc's mallopt parameters (malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def settle_after_start() -> None:
    """Keep what start-up made out of every later collection."""
    gc.freeze()


def skip_last_collection() -> None:
    """For a process about to end: spare it a last walk over every object still alive (a
    tenth of a second after a large sync)."""
    gc.freeze()


def keep_large_buffers_apart(threshold: int = 1024 * 1024, arenas: int = 2) -> None:
    """Allocate blocks of `threshold` bytes or more with their own mmap, and use at most
    `arenas` heaps across threads (glibc only; elsewhere nothing changes).

    An importer moves parts of many MiB through several threads (a resumable upload's part
    buffers, the object store's request bodies). By default glibc raises its mmap threshold
    each time such a block is freed, so later ones come from the threads' heaps, which keep
    the freed space: a worker grew by about 16 MiB per GiB received into an object store.
    With the threshold fixed, a large block goes back to the system when it is freed."""
    try:
        # The process's own symbols, libc's among them: `ctypes.util.find_library` would run
        # ldconfig in a child process of a worker that is serving.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, threshold)
    mallopt(_M_ARENA_MAX, arenas)
