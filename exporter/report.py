"""What a sync did, per target and in all: the one-line summary and the exit status."""

import time
from dataclasses import dataclass, field


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


@dataclass
class TargetReport:
    name: str
    sent: int = 0              # complete after we sent something
    already_present: int = 0   # complete at once: the importer held it before
    failed: int = 0            # entities that failed (reason recorded in the queue)
    deferred: int = 0          # "not tried": the target failed (backoff, auth); never failed
    bytes: int = 0
    requests: int = 0
    problem: str | None = None  # why the target stopped or was not synced
    busy: bool = False          # another sync holds the target: not a failure

    @property
    def ok(self) -> bool:
        return self.busy or (self.problem is None and self.failed == 0)

    def line(self) -> str:
        text = (f"target {self.name}: sent {self.sent}, already present "
                f"{self.already_present}, failed {self.failed}")
        if self.deferred:
            text += f", not tried {self.deferred}"
        return text + (f" ({self.problem})" if self.problem else "")


@dataclass
class SyncReport:
    trace_id: str
    started: float = field(default_factory=time.monotonic)
    targets: list[TargetReport] = field(default_factory=list)
    seconds: float = 0.0

    def finish(self) -> "SyncReport":
        self.seconds = time.monotonic() - self.started
        return self

    def total(self, name: str) -> int:
        return sum(getattr(t, name) for t in self.targets)

    @property
    def ok(self) -> bool:
        """True only when every entity tried reached complete and no target was held back."""
        return all(t.ok for t in self.targets)

    def summary(self) -> str:
        """The totals of the target lines, with the same words: an entity not tried (its
        target stopped or was held back) is never counted as failed."""
        not_tried = self.total("deferred")
        return (f"sync {'complete' if self.ok else 'INCOMPLETE'}: sent {self.total('sent')}, "
                f"already present {self.total('already_present')}, "
                f"failed {self.total('failed')}, "
                + (f"not tried {not_tried}, " if not_tried else "")
                + f"{human_bytes(self.total('bytes'))}, {self.seconds:.1f} s, "
                f"trace {self.trace_id}")
