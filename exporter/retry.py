"""The exporter's retry rules, in one place: whose fault a failure is, how long to wait
before the next try, and when to give up. Pure: plain facts in (the error, the failures so
far, the time now), a decision out. The sync does the I/O and only records what this
module decided, so "why did the exporter back off?" is answered here.

    error (`exporter.errors`)              fault         then
    -------------------------------------  ------------  -----------------------------------
    Refused (400, 413 …), ProtocolError,   ENTITY        the entities of the request fail;
    any other FinalError (UploadRefused,                 each row is retried after
    a blob that left the archive)                        base × 2^attempts, at most max
    RetryableError (unreachable, TLS,      TARGET        the target waits
    timeout, 5xx, 429), NotFound (404)                   base × 2^(failures − 1), at most
                                                         max, at least the Retry-After;
                                                         its other rows wait with it
    AuthError (401), Forbidden (403)       CREDENTIALS   the target waits until an admin
                                                         changes it (`target set`/`enable`)

Three moments differ from the table:
- version 1, a 5xx from the importer's own code (`may_be_the_entitys`: 500, 501, 505 …; not
  502/504, a gateway that could not reach it, nor 503/429, an importer saying it is busy) may
  be one entity's: MeteorPi's 2015 importer answers 500 for ever to an entity whose ID once
  missed its cache, and to a body it cannot read. The sync goes on with the next entity
  (`ServerErrorStreak`):

    what happens next                               whose fault the streak of 5xx is
    ----------------------------------------------  ------------------------------------------
    another entity's exchange ends with an answer   each entity's (ENTITY): failed, with
    that is no such 5xx (complete, or its own       the reason and its own backoff
    failure)
    `MAX_ENTITY_5XX` different entities in a row    the target's (TARGET): it backs off, the
    got one, or the target faults (unreachable,     entities of the streak stay pending
    timeout, 503 …)
    the queue ends                                  ENTITY if an exchange of this run got an
                                                    answer before, else TARGET

  (Version 2 sends many entities per request: there a 5xx stays the target's.)
- asking for capabilities (no entity in hand yet): Refused or ProtocolError is no fault, it
  means the importer speaks version 1 only; an AuthError is the credentials' fault and any
  other error the target's;
- a resumable upload retries a chunk after a RetryableError as long as the importer's offset
  moves; after `MAX_STALLS` attempts in a row without progress it gives up with that error
  (the target's fault, the upload URL is kept for the next run).

`base` and `max` are the settings `exporter.backoff_base_s` and `exporter.backoff_max_s`.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Generic, TypeVar

from exporter import errors

if TYPE_CHECKING:
    from exporter.sync import SyncSettings

# Consecutive attempts without a byte of progress before a resumable upload gives up.
MAX_STALLS = 3

# Different entities in a row whose exchanges got a 5xx before the target is blamed (version
# 1). One is the common case with MeteorPi's 2015 importer (an ID whose cache entry went
# bad); two in a row happen when its cache lost several entries at once (a restart). Three
# different entities in a row is more likely an importer that is broken for everyone, and
# each further try costs a full request to it, so the target backs off.
MAX_ENTITY_5XX = 3

# 5xx answers that say nothing about the entity: a gateway that could not reach the importer
# (502, 504), an importer saying it is busy (503; 429 is below 500 anyway).
_NOT_THE_ENTITYS = frozenset({502, 503, 504})

Item = TypeVar("Item")


class Fault(Enum):
    """Whose fault a failure is, which says what waits: one entity, the target, or the target
    until an admin changes its credentials."""
    ENTITY = "entity"
    TARGET = "target"
    CREDENTIALS = "credentials"


def fault_of(error: errors.ExportError) -> Fault:
    """Whose fault an error of an exchange is. An error the tree does not sort (neither
    retryable nor final) is the target's: blaming an entity for it would mark rows failed
    that may be fine."""
    if isinstance(error, errors.AuthError):
        return Fault.CREDENTIALS
    if isinstance(error, errors.NotFound):        # nothing at this URL: no entity can pass
        return Fault.TARGET
    if isinstance(error, errors.FinalError):
        return Fault.ENTITY
    return Fault.TARGET


def may_be_the_entitys(error: errors.ExportError) -> bool:
    """Whether a target fault may be one entity's own: a 5xx from the importer's own code,
    which answered after checking the credentials (a 401 comes first) and failed on what it
    was sent. Version 1 only; `ServerErrorStreak` decides whose it was."""
    return (isinstance(error, errors.ServerError) and error.status >= 500
            and error.status not in _NOT_THE_ENTITYS)


@dataclass
class ServerErrorStreak(Generic[Item]):
    """Version 1: the entities in a row whose exchange got a 5xx that may be their own
    (`may_be_the_entitys`), undecided until the next exchanges say whose fault it was (the
    table above). Pure bookkeeping: the sync tells it how each exchange ended and records what
    it answers."""
    suspects: list[tuple[Item, errors.ServerError]] = field(default_factory=list)
    answered: bool = False      # an exchange of this run ended with an answer, no such 5xx

    def add(self, item: Item, error: errors.ServerError) -> Fault | None:
        """Another entity got a 5xx: TARGET once `MAX_ENTITY_5XX` in a row did (the sync backs
        the target off and defers them all), else None (go on with the next entity)."""
        self.suspects.append((item, error))
        return Fault.TARGET if len(self.suspects) >= MAX_ENTITY_5XX else None

    def broken(self) -> list[tuple[Item, errors.ServerError]]:
        """An exchange ended with an answer that is no such 5xx: the importer works, so the
        5xx so far were their entities' own (each fails with its error); the streak is over."""
        self.answered = True
        suspects, self.suspects = self.suspects, []
        return suspects

    @property
    def items(self) -> list[Item]:
        return [item for item, _ in self.suspects]

    def at_end(self) -> Fault:
        """Whose fault a streak still open when the queue ends is: the entities', if the
        importer answered an exchange of this run before; else the target's."""
        return Fault.ENTITY if self.answered else Fault.TARGET


def means_version_1(error: errors.ExportError) -> bool:
    """Whether an error asking for capabilities is no fault at all: an importer that refuses
    the request, or answers something that is no capabilities document, speaks version 1."""
    return isinstance(error, (errors.Refused, errors.ProtocolError))


def keep_uploading(stalls: int) -> bool:
    """Whether a resumable upload tries again after `stalls` attempts in a row that moved
    the importer's offset by no byte: a link that still makes progress is worth it, one that
    keeps failing on the same byte is the target's fault."""
    return stalls < MAX_STALLS


@dataclass(frozen=True)
class RetryPolicy:
    """The waits, doubling per failure from `base_s` up to `max_s`."""
    base_s: float
    max_s: float

    @classmethod
    def from_settings(cls, settings: "SyncSettings") -> "RetryPolicy":
        return cls(settings.backoff_base_s, settings.backoff_max_s)

    def entity_retry_at(self, attempts: int, now_ms: int) -> int:
        """When (ms since the epoch) a failed row is due again."""
        return now_ms + int(self.entity_wait_s(attempts) * 1000)

    def entity_wait_s(self, attempts: int) -> float:
        """Seconds before a failed row is due again, after `attempts` earlier attempts."""
        return min(self.base_s * 2 ** attempts, self.max_s)

    def target_wait_s(self, failures: int, retry_after_s: float = 0.0) -> float:
        """Seconds before a failed target is tried again, after `failures` failures in a row
        (this one included); never sooner than the importer asked (Retry-After)."""
        return max(min(self.base_s * 2 ** (failures - 1), self.max_s), retry_after_s)

    def target_retry_at(self, failures: int, retry_after_s: float, now_ms: int) -> int:
        """When (ms since the epoch) a failed target is due again."""
        return now_ms + int(self.target_wait_s(failures, retry_after_s) * 1000)
