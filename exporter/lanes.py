"""Version 2 pages sent two at a time.

One exporter thread keeps at most one importer worker busy: while it waits for a batch's
answer the importer works, and while it reads files and builds the next request the
importer waits. With two lanes, each a thread with its own HTTP session and batch driver,
a second page goes out while the first one's bytes are being stored, and an importer with
several workers stores both at once.

Pages are independent: an event's files travel in its own batch, and a status that both
lanes need is sent by both (the second copy is answered `complete`). Each lane draws from
the target's one bandwidth bucket, so `--bwlimit` still bounds the sum. Results are taken
in the order the pages went, so the queue, the traces and the report are still written by
the sync's own thread.
"""

import queue
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Callable

from exporter import errors
from exporter.sync_v2 import BatchDriver, PageOutcome
from exporter.transport import Transport
from model.export.queue import QueueItem

LANES = 2


@dataclass
class SentPage:
    items: list[QueueItem]
    started_ms: int
    page: PageOutcome          # filled in by the lane as the importer answers
    future: "Future[None]"     # ends when the page does; raises what ended it early


class BatchLanes:
    def __init__(self, transport: Transport, siblings: list[Transport],
                 make_driver: Callable[[Transport], BatchDriver]):
        # The first lane uses the sync's own transport; the others a sibling each.
        self.transports = [transport, *siblings]
        self.count = len(self.transports)
        self._free: queue.SimpleQueue[BatchDriver] = queue.SimpleQueue()
        for lane_transport in self.transports:
            self._free.put(make_driver(lane_transport))
        self._pool = ThreadPoolExecutor(self.count, thread_name_prefix="sync-lane")

    def send(self, items: list[QueueItem], started_ms: int) -> SentPage:
        page = PageOutcome()
        return SentPage(items, started_ms, page, self._pool.submit(self._send, items, page))

    def _send(self, items: list[QueueItem], page: PageOutcome) -> None:
        driver = self._free.get()
        try:
            driver.send(items, page)
        finally:
            self._free.put(driver)

    @property
    def requests(self) -> int:
        return sum(t.requests for t in self.transports)

    @property
    def bytes_uploaded(self) -> int:
        return sum(t.bytes_uploaded for t in self.transports)

    def close(self) -> None:
        """Wait for the pages in flight, then close the siblings (the first transport
        belongs to the sync)."""
        self._pool.shutdown(wait=True)
        for sibling in self.transports[1:]:
            sibling.close()


@contextmanager
def logged_in(siblings: list[Transport]):
    """While the body runs (the first lane asks for capabilities), each other lane opens its
    connection with a request of its own. An importer worker checks a password (scrypt, slow
    on purpose) on its first request: side by side on the workers, not one after the
    other on the sync's critical path. A failure here only means the lane connects later."""
    with ThreadPoolExecutor(max(1, len(siblings)), thread_name_prefix="sync-login") as pool:
        for sibling in siblings:
            pool.submit(_quietly, sibling.capabilities)
        yield


def _quietly(call) -> None:
    with suppress(errors.ExportError):
        call()


def close_unused(siblings: list[Transport], counted: Transport) -> None:
    """Close lanes that will not be used; their requests still count in the report."""
    for sibling in siblings:
        counted.requests += sibling.requests
        sibling.close()
