"""Lost races: how the database says another transaction got there first, and what the
archive does then.

Storing an entity reads what is held, then inserts. On SQLite nothing comes in between (a
write transaction holds the lock from BEGIN IMMEDIATE). On PostgreSQL (READ COMMITTED) two
processes can both read "not held" and both insert: the second insert waits for the first
transaction and then fails with a unique violation. Two transactions inserting overlapping
rows in different orders can also deadlock, and one of them is cancelled. Neither is a
fault: the entity, or one of its file records, is simply held now. So the decision is made
again, in a new transaction that sees what the winner committed (docs/protocol.md,
"Concurrent imports"); its answer is the one an entity already held gets.
"""

import logging
from typing import Callable, TypeVar

from sqlalchemy.exc import DBAPIError

from model.store.database import DatabaseBusy

log = logging.getLogger("skyrelay.archive")

T = TypeVar("T")

# A new decision sees the winner's commit, so one more attempt settles a race between two
# writers; the others are for several writers racing for overlapping entities at once.
RACE_ATTEMPTS = 3
# What a concurrent transaction can cause, by PostgreSQL's SQLSTATE: unique_violation (it
# inserted the same key first), foreign_key_violation (it deleted the status named),
# serialization_failure and deadlock_detected (this transaction was cancelled because of it).
# Any other error (a NOT NULL violation, say) is a fault, not a race, and is raised as it is.
_RACE_SQLSTATES = frozenset({"23505", "23503", "40001", "40P01"})
# The same constraints by SQLite's extended result codes (where BEGIN IMMEDIATE leaves no room
# for a race; kept so that the rule is the same on both).
_RACE_SQLITE_ERRORS = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY",
                                 "SQLITE_CONSTRAINT_FOREIGNKEY"})


def lost_race(exc: BaseException) -> bool:
    """Whether `exc` means a concurrent transaction changed what this one decided on: a
    unique or foreign key violation, a deadlock or a serialization failure."""
    orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
    return getattr(orig, "sqlstate", None) in _RACE_SQLSTATES or \
        getattr(orig, "sqlite_errorname", None) in _RACE_SQLITE_ERRORS


def deciding_again(decide_and_store: Callable[[], T], what: str) -> T:
    """Run `decide_and_store` (one transaction that reads what is held and stores); after a
    lost race, run it again on what is held then, up to RACE_ATTEMPTS times in all. Losing
    every time (many writers at the same rows at once) raises DatabaseBusy: the request may
    be sent again shortly (503 with Retry-After), which is no fault of the entity's."""
    for attempt in range(1, RACE_ATTEMPTS + 1):
        try:
            return decide_and_store()
        except DBAPIError as exc:
            if not lost_race(exc):
                raise
            log.info("storing %s lost a race (%s); deciding again", what,
                     type(exc.orig).__name__)
            if attempt == RACE_ATTEMPTS:
                raise DatabaseBusy(f"storing {what} lost {RACE_ATTEMPTS} races in a row to "
                                   "concurrent imports; send it again shortly") from exc
    raise AssertionError("unreachable")
