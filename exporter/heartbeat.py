"""A sync's hold on its target's lock, renewed from a thread of its own."""

import logging
import threading

from model.export.locks import LockLost, SyncLock, SyncLocks

log = logging.getLogger("skyrelay.exporter")


class LockHeartbeat(threading.Thread):
    """Renews the target's lock every third of its lifetime, also while one long upload is
    in flight, so that a slow link never lets the lock expire under a live sync."""

    def __init__(self, locks: SyncLocks, lock: SyncLock, interval_s: float):
        super().__init__(daemon=True, name="sync-lock-heartbeat")
        self.locks, self.lock, self.interval_s = locks, lock, interval_s
        self.lost: LockLost | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            try:
                self.locks.heartbeat(self.lock)
            except LockLost as lost:
                self.lost = lost
                return
            except Exception:  # noqa: BLE001 - a busy database: try again next beat
                log.warning("could not renew the sync lock; retrying", exc_info=True)

    def check(self) -> None:
        """Raise LockLost in the syncing thread once another holder took the target."""
        if self.lost is not None:
            raise self.lost

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
