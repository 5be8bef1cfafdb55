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

Two moments differ from the table:
- asking for capabilities (no entity in hand yet): Refused or ProtocolError is no fault, it
  means the importer speaks version 1 only; an AuthError is the credentials' fault and any
  other error the target's;
- a resumable upload retries a chunk after a RetryableError as long as the importer's offset
  moves; after `MAX_STALLS` attempts in a row without progress it gives up with that error
  (the target's fault, the upload URL is kept for the next run).

`base` and `max` are the settings `exporter.backoff_base_s` and `exporter.backoff_max_s`.
"""

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from exporter import errors

if TYPE_CHECKING:
    from exporter.sync import SyncSettings

# Consecutive attempts without a byte of progress before a resumable upload gives up.
MAX_STALLS = 3


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
