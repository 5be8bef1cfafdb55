"""One sync at a time per target, across processes and machines sharing the database.

A lock is a row with an expiry that its holder renews (heartbeat) while it works. A holder that
crashes stops renewing, so its lock expires and the next sync takes over; a holder on this
same machine whose process is gone is recognised at once. Advisory locks or file locks would
not survive a move to several exporter machines on one PostgreSQL, this row does.
"""

import os
import socket
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from model.protocol.errors import Busy, SkyrelayError
from model.store import schema
from model.store.database import Database, now_ms

_L = schema.sync_locks.c


class LockHeld(Busy):
    """Another sync of this target is running (or its lock has not expired yet)."""

    def __init__(self, holder: str, expires_ms: int):
        seconds = max(0, (expires_ms - now_ms()) // 1000)
        super().__init__(f"a sync by {holder} holds this target (lock expires in {seconds} s "
                         "unless renewed)")
        self.holder = holder
        self.expires_ms = expires_ms


class LockLost(SkyrelayError):
    """Our lock expired and another holder took the target: stop working on it."""


@dataclass(frozen=True)
class SyncLock:
    target_id: int
    token: str
    holder: str
    ttl_ms: int                 # each renewal holds the lock this much longer


def this_holder() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def _holder_is_dead(holder: str) -> bool:
    """True only when the holder ran on this machine and its process no longer exists."""
    pid, _, host = holder.partition("@")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class SyncLocks:
    def __init__(self, database: Database):
        self.db = database

    def acquire(self, target_id: int, ttl_s: float) -> SyncLock:
        """Take the target's lock for `ttl_s` (renewed by `heartbeat`) or raise LockHeld. A
        stale lock is replaced."""
        lock = SyncLock(target_id, uuid.uuid4().hex, this_holder(), int(ttl_s * 1000))
        now = now_ms()
        try:
            with self.db.transaction() as tx:
                held = tx.execute(select(_L.holder, _L.expires_ms)
                                  .where(_L.target_id == target_id)).first()
                if held is not None:
                    if held.expires_ms >= now and not _holder_is_dead(held.holder):
                        raise LockHeld(held.holder, held.expires_ms)
                    tx.execute(delete(schema.sync_locks).where(_L.target_id == target_id))
                tx.execute(insert(schema.sync_locks).values(
                    target_id=target_id, holder=lock.holder, token=lock.token,
                    acquired_ms=now, expires_ms=now + lock.ttl_ms))
        except IntegrityError:
            # A concurrent acquirer (PostgreSQL) inserted first.
            return self._raise_held(target_id)
        return lock

    def _raise_held(self, target_id: int):
        with self.db.reading() as conn:
            held = conn.execute(select(_L.holder, _L.expires_ms)
                                .where(_L.target_id == target_id)).first()
        raise LockHeld(held.holder if held else "another process",
                       held.expires_ms if held else now_ms())

    def heartbeat(self, lock: SyncLock) -> None:
        """Renew the expiry; raise LockLost if someone else holds the target now."""
        with self.db.transaction() as tx:
            renewed = tx.execute(update(schema.sync_locks)
                                 .where(_L.target_id == lock.target_id, _L.token == lock.token)
                                 .values(expires_ms=now_ms() + lock.ttl_ms)).rowcount
        if not renewed:
            raise LockLost(f"the sync lock of target {lock.target_id} was taken over")

    def release(self, lock: SyncLock) -> None:
        with self.db.transaction() as tx:
            tx.execute(delete(schema.sync_locks).where(_L.target_id == lock.target_id,
                                                       _L.token == lock.token))
