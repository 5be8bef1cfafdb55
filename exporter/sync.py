"""One sync run: for each target, queue what is new, then drive every due queue row through
the handshake until the importer answers `complete` or the entity fails: version 2 (batches,
`exporter.sync_v2`, two pages at a time on `exporter.lanes`) when the target allows it and
the importer advertises it, else version 1 one entity at a time (`exporter.sync_v1`).

Crash safety comes from the order of writes: a queue row is marked done only after the
importer answered `complete`, so a run killed at any point leaves the row pending and the next
run sends it again; the importer answers `complete` at once for what it already holds, and
file bytes it already has are not asked for.

Failures are sorted by whose fault they are, and the waits decided, by `exporter.retry`
(the rules are listed there): an entity's fault marks its row failed and the sync goes on with
the next row (an importer answering `failed`, or too many steps, is the entity's fault too);
a fault of the target or its credentials stops the target's sync, its remaining rows wait
for a later run. On version 1 a 5xx may be one entity's (MeteorPi's importer fails for ever on
some IDs): the sync goes on, and the next entities say whose fault it was.
"""

import logging
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, fields
from typing import NamedTuple, NoReturn

from exporter import errors
from exporter.heartbeat import LockHeartbeat
from exporter.lanes import LANES, BatchLanes, SentPage, close_unused, logged_in
from exporter.progress import NoProgress, advance, progress_bar
from exporter.report import SyncReport, TargetReport
from exporter.retry import (Fault, RetryPolicy, ServerErrorStreak, fault_of,
                            may_be_the_entitys, means_version_1)
from exporter.sync_traces import SyncTracer
from exporter.sync_v1 import EntityDriver
from exporter.sync_v2 import BatchDriver, speaks_version_2
from exporter.transport import Transport
from model.export.locks import LockHeld, LockLost
from model.export.queue import QueueItem
from model.export.targets import Target
from model.ops.traces import new_trace_id
from model.protocol.vocabulary import Complete, Failed, Outcome
from model.site import Site
from model.store.database import now_ms

log = logging.getLogger("skyrelay.exporter")


# Version 1 rows claimed from the queue at a time (not a setting: it bounds only how many
# queue rows one claim reads).
PAGE_SIZE = 200


@dataclass(frozen=True)
class SyncSettings:
    """The `exporter.*` settings a sync reads, by their names in `skyrelay/settings.py`
    (where their defaults are declared)."""
    timeout_s: float
    max_steps: int
    backoff_base_s: float
    backoff_max_s: float
    lock_ttl_s: float
    batch_size: int                             # version 2
    small_file_bytes: int
    blobs_request_bytes: int
    upload_chunk_bytes: int
    page_size: int = PAGE_SIZE

    @classmethod
    def from_config(cls, config, **overrides) -> "SyncSettings":
        """Each field from the setting `exporter.<field>`, or from `overrides`."""
        read = {f.name: config[f"exporter.{f.name}"] for f in fields(cls)
                if f.name != "page_size"}
        return cls(**{**read, **overrides})


class Tried(NamedTuple):
    """A version 1 queue row whose exchange started at `started` (ms since the epoch)."""
    item: QueueItem
    started: int


class TargetStopped(Exception):
    """The target (not one entity) failed; the message says why."""


class Syncer:
    """Runs syncs of a site's targets; one instance may run many times (`--every`)."""

    def __init__(self, site: Site, settings: SyncSettings, progress: bool = False):
        self.site = site
        self.settings = settings
        self.retry = RetryPolicy.from_settings(settings)
        self.progress = progress
        self.targets, self.queue, self.locks = site.targets, site.queue, site.locks

    def run(self, names: list[str] | None = None, trace_id: str | None = None) -> SyncReport:
        """Sync the named targets (each must exist), or every enabled target."""
        report = SyncReport(trace_id or new_trace_id())
        chosen = ([self.targets.get(name) for name in names] if names
                  else [t for t in self.targets.list() if t.enabled])
        for target in chosen:
            report.targets.append(self.sync_target(target, report.trace_id))
        return report.finish()

    def sync_target(self, target: Target, trace_id: str) -> TargetReport:
        report = TargetReport(target.name)
        tracer = SyncTracer(self.site.traces, trace_id, target)
        report.problem = _held_back(target)
        if report.problem:
            tracer.run_finished(report)
            return report
        try:
            lock = self.locks.acquire(target.target_id, self.settings.lock_ttl_s)
        except LockHeld as held:
            report.busy, report.problem = True, str(held)
            tracer.run_finished(report)
            return report
        tracer.run_started()
        try:
            self.queue.release_leases(target.target_id)
            self.queue.enqueue_new(target)
            self._drain(target, trace_id, lock, report, tracer)
            self.targets.record_success(target.target_id)
        except (TargetStopped, LockLost) as stop:
            report.problem = str(stop)
        finally:
            self.locks.release(lock)
            tracer.run_finished(report)
        return report

    def _drain(self, target: Target, trace_id: str, lock, report: TargetReport,
               tracer: SyncTracer) -> None:
        total = self.queue.counts(target.target_id)["due"]
        bar = progress_bar(total, target.name) if self.progress else NoProgress()
        transport = Transport(target.url, target.user, target.password.reveal(),
                              self.settings.timeout_s, trace_id, target.ca_bundle,
                              target.bwlimit)
        heartbeat = LockHeartbeat(self.locks, lock, self.settings.lock_ttl_s / 3)
        heartbeat.start()
        counted: Transport | BatchLanes = transport     # where requests and bytes are counted
        try:
            page = self._claim(target, 0, self.settings.page_size)
            lanes = self._batch_lanes(target, transport, tracer, page) if page else None
            if lanes is None:
                self._drain_one_by_one(target, transport, page, report, tracer, heartbeat, bar)
            else:
                counted = lanes
                try:
                    self._drain_batched(target, lanes, page, report, tracer, heartbeat, bar)
                finally:
                    lanes.close()
        except TargetStopped:
            report.deferred = max(0, total - report.sent - report.already_present
                                  - report.failed)
            raise
        finally:
            heartbeat.stop()
            report.requests += counted.requests
            report.bytes += counted.bytes_uploaded
            transport.close()
            bar.close()

    def _claim(self, target: Target, after_id: int, limit: int) -> list[QueueItem]:
        """The next rows after `after_id`, leased for as long as the sync's lock lasts."""
        return self.queue.claim(target.target_id, after_id, limit, self.settings.lock_ttl_s)

    # -- version 2 --------------------------------------------------------------------------

    def _batch_lanes(self, target: Target, transport: Transport, tracer: SyncTracer,
                     page: list[QueueItem]) -> BatchLanes | None:
        """Version 2 when the target allows it and the importer advertises it (`auto`; a
        404 at capabilities, or an answer that is no capabilities document, means version
        1), else None: version 1."""
        if target.protocol == "v1":
            return None
        siblings = [transport.sibling() for _ in range(LANES - 1)]
        try:
            with logged_in(siblings):
                capabilities = transport.capabilities()
        except errors.ExportError as exc:               # (a 404 is None already)
            if not means_version_1(exc):
                close_unused(siblings, transport)
                self._target_failed(target, exc, [i for i in page if i.body is not None],
                                    tracer)
            capabilities = None
        if not speaks_version_2(capabilities):
            close_unused(siblings, transport)
            if target.protocol == "v2":
                raise TargetStopped("the target is set to protocol v2 but its importer speaks "
                                    "version 1 only; set it to auto or v1 (`skyrelay target "
                                    "set NAME --protocol auto`)")
            return None
        settings = self.settings
        return BatchLanes(transport, siblings, lambda lane_transport: BatchDriver(
            self.site.archive, lane_transport, capabilities, self.site.upload_urls,
            target.name, settings.batch_size, settings.small_file_bytes,
            settings.blobs_request_bytes, settings.upload_chunk_bytes,
            self.queue.mark_done_many))

    def _drain_batched(self, target: Target, lanes: BatchLanes, page: list[QueueItem],
                       report: TargetReport, tracer: SyncTracer, heartbeat: LockHeartbeat,
                       bar) -> None:
        """Pages go out on the lanes as soon as one is free (one more waits its turn, so no
        lane idles while this thread records a finished page and claims the next); their
        outcomes are recorded in the order they went. If the target stops, the pages still
        in flight end first and what they delivered is recorded."""
        def finish(sent: SentPage) -> None:
            self._record_page(target, sent, report, tracer)
            advance(bar, len(sent.items), lanes)

        if len(page) < self.settings.batch_size:   # claimed before the protocol was known
            page += self._claim(target, page[-1].id, self.settings.batch_size - len(page))
        in_flight: deque[SentPage] = deque()
        try:
            while page:
                heartbeat.check()
                in_flight.append(lanes.send(self._live(page), now_ms()))
                if len(in_flight) > lanes.count:    # one waits its turn: no lane idles
                    finish(in_flight.popleft())     # while a finished page is recorded
                page = self._claim(target, page[-1].id, self.settings.batch_size)
            while in_flight:
                finish(in_flight.popleft())
        except (TargetStopped, LockLost):
            for sent in in_flight:          # they end first; what they delivered counts
                with suppress(TargetStopped):
                    self._record_page(target, sent, report, tracer)
            raise

    def _live(self, page: list[QueueItem]) -> list[QueueItem]:
        for item in page:
            if item.body is None:
                self.queue.mark_done(item.id, "left the archive before it was sent")
        return [item for item in page if item.body is not None]

    def _record_page(self, target: Target, sent: SentPage, report: TargetReport,
                     tracer: SyncTracer) -> None:
        """Record every row's outcome of a page sent on a lane. Its completes were marked
        done by the lane as they arrived; when a target fault ended the page early, they
        still count, and only the rows without an outcome are deferred (the target stops)."""
        try:
            sent.future.result()
            stopped_by = None
        except errors.ExportError as exc:
            stopped_by = exc
            if fault_of(exc) is Fault.ENTITY:
                for item in sent.items:
                    sent.page.outcomes.setdefault(item.id, Failed(str(exc)))
        page = sent.page
        for status_id, answer in page.statuses_sent:
            tracer.status_sent(status_id, answer, sent.started_ms)
        traced, unanswered = [], []
        for item in sent.items:
            outcome = page.outcomes.get(item.id)
            if outcome is None:
                unanswered.append(item)
                continue
            traced.append((item.kind, item.entity_id, outcome))
            if isinstance(outcome, Complete):
                report.already_present += outcome.already_present
                report.sent += not outcome.already_present
                continue
            self.queue.mark_failed(item.id, outcome.reason,
                                   self.retry.entity_retry_at(item.attempts, now_ms()))
            log.warning("target %s: %s %s failed: %s", target.name, item.kind,
                        item.entity_id, outcome.reason)
            report.failed += 1
        tracer.entities(traced, sent.started_ms)
        if unanswered:
            self._target_failed(target, stopped_by, unanswered, tracer, sent.started_ms)

    def _target_failed(self, target: Target, exc: errors.ExportError, items: list[QueueItem],
                       tracer: SyncTracer, started: int | None = None) -> NoReturn:
        """The target (not an entity) failed: note it on the rows in hand, block the target
        (a fault of its credentials) or back it off (any other fault), and stop its sync."""
        tracer.deferred_many([(i.kind, i.entity_id) for i in items],
                             started or now_ms(), str(exc))
        self.queue.mark_deferred_many([item.id for item in items], str(exc))
        if fault_of(exc) is Fault.CREDENTIALS:
            self.targets.record_auth_failure(target.target_id, str(exc))
            raise TargetStopped(f"{exc}; the target waits until it is changed "
                                "(`skyrelay target set` or `target enable`)") from None
        failures = target.failures + 1
        retry_at = self.retry.target_retry_at(failures, getattr(exc, "retry_after_s", 0.0),
                                              now_ms())
        self.targets.record_failure(target.target_id, failures, str(exc), retry_at)
        wait = max(0, retry_at - now_ms()) / 1000
        raise TargetStopped(f"{exc}; backing off {wait:.0f} s") from None

    # -- version 1 --------------------------------------------------------------------------

    def _drain_one_by_one(self, target: Target, transport: Transport, page: list[QueueItem],
                          report: TargetReport, tracer: SyncTracer, heartbeat: LockHeartbeat,
                          bar) -> None:
        driver = EntityDriver(self.site.archive, transport, self.settings.max_steps)
        streak: ServerErrorStreak[Tried] = ServerErrorStreak()
        while page:
            for item in page:
                heartbeat.check()
                self._one(target, driver, item, report, tracer, streak)
                advance(bar, 1, transport)
            page = self._claim(target, page[-1].id, self.settings.page_size)
        if streak.suspects and streak.at_end() is Fault.TARGET:
            first, (_, last_error) = streak.items[0], streak.suspects[-1]
            self._target_failed(target, last_error, [t.item for t in streak.items], tracer,
                                first.started)
        self._entities_own_5xx(target, streak, report, tracer)

    def _one(self, target: Target, driver: EntityDriver, item: QueueItem,
             report: TargetReport, tracer: SyncTracer,
             streak: ServerErrorStreak[Tried]) -> None:
        """Send one queue row and record the outcome; raise TargetStopped for target faults.
        A 5xx that may be the entity's own waits in `streak` until the next entities say
        whose it was (`exporter.retry`); a target fault defers the streak's entities too."""
        if item.body is None:
            self.queue.mark_done(item.id, "left the archive before it was sent")
            return
        started = now_ms()
        try:
            outcome = driver.send(item, tracer)
        except errors.ExportError as exc:
            if may_be_the_entitys(exc):
                if streak.add(Tried(item, started), exc) is Fault.TARGET:
                    self._target_failed(target, exc, [t.item for t in streak.items], tracer,
                                        started)
                return
            if fault_of(exc) is not Fault.ENTITY:
                self._target_failed(target, exc, [t.item for t in streak.items] + [item],
                                    tracer, started)
            outcome = Failed(str(exc))
        self._entities_own_5xx(target, streak, report, tracer)
        self._record(target, item, started, outcome, report, tracer)

    def _entities_own_5xx(self, target: Target, streak: ServerErrorStreak[Tried],
                          report: TargetReport, tracer: SyncTracer) -> None:
        """The importer answered other entities: each 5xx of the streak was its entity's
        own, which fails with it."""
        for tried, error in streak.broken():
            self._record(target, tried.item, tried.started, Failed(
                f"{error} (other entities got through: this entity's fault)"), report, tracer)

    def _record(self, target: Target, item: QueueItem, started: int, outcome: Outcome,
                report: TargetReport, tracer: SyncTracer) -> None:
        """One entity's outcome: traced, its row done or failed (with its own backoff), and
        counted."""
        tracer.entity(item.kind, item.entity_id, started, outcome)
        if isinstance(outcome, Complete):
            self.queue.mark_done(item.id)
            if outcome.already_present:
                report.already_present += 1
            else:
                report.sent += 1
        else:
            self.queue.mark_failed(item.id, outcome.reason,
                                   self.retry.entity_retry_at(item.attempts, now_ms()))
            log.warning("target %s: %s %s failed: %s", target.name, item.kind, item.entity_id,
                        outcome.reason)
            report.failed += 1


def _held_back(target: Target) -> str | None:
    """Why this target must not be synced now, or None."""
    if not target.enabled:
        return "disabled; `skyrelay target enable` to sync it"
    if target.auth_failed:
        return (f"blocked: {target.last_error}; change the target (`skyrelay target set` or "
                "`target enable`) to try again")
    wait_ms = target.next_attempt_ms - now_ms()
    if wait_ms > 0:
        return (f"backing off after {target.failures} failures, next try in "
                f"{wait_ms / 1000:.0f} s (last error: {target.last_error})")
    return None
