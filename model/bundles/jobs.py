"""Run a bundle ingest as a job: the job's task and percent follow the ingest, and the job ends
`done` or FAILED with the reason. The same function serves `skyrelay bundle ingest` and the
importer's background workers, so both behave (and are traced) the same way."""

import logging
import time
from dataclasses import dataclass
from typing import Callable

from model.bundles.format import BundleRefused
from model.bundles.ingest import IngestLimits, IngestReport, Origin, ingest_bundle
from model.ops.jobs import Job, Jobs
from model.site import Site

log = logging.getLogger("skyrelay.jobs")


class _Throttled:
    """Write progress to the job at most every `interval_s` (or on a new task): a poller needs
    a moving number, not a database write per tar block."""

    def __init__(self, jobs: Jobs, job_id: int, interval_s: float = 0.5):
        self.jobs, self.job_id, self.interval_s = jobs, job_id, interval_s
        self._task, self._last = None, 0.0

    def __call__(self, task: str, percent: float) -> None:
        now = time.monotonic()
        if task != self._task or now - self._last >= self.interval_s:
            self._task, self._last = task, now
            self.jobs.advance(self.job_id, task, percent)


@dataclass(frozen=True)
class JobOutcome:
    job: Job
    report: IngestReport | None


def run_ingest_job(site: Site, job: Job, component: str, limits: IngestLimits,
                   before_finish: Callable[[], None] = lambda: None) -> JobOutcome:
    """Ingest `job.bundle_path`; the job ends done or FAILED. Never raises for a bad bundle.

    `before_finish` (removing a spooled bundle) runs before the job's last state is written:
    a client that sees "done" or FAILED may rely on nothing of the job being left behind."""
    jobs = site.jobs
    origin = Origin(user=job.user, component=component, trace_id=job.trace_id,
                    job_id=job.job_id)
    report, failure = None, None
    try:
        report = ingest_bundle(site.archive, site.traces, job.bundle_path, origin,
                               limits, _Throttled(jobs, job.job_id))
    except BundleRefused as exc:
        failure = str(exc)
    except Exception as exc:  # noqa: BLE001 - a job must never stay "running" forever
        log.exception("job %s failed", job.job_id)
        failure = f"internal error: {type(exc).__name__}: {exc}"
    finally:
        try:
            before_finish()
        except Exception:  # noqa: BLE001 - the job must still end
            log.exception("cleanup of job %s failed", job.job_id)
    if failure is None:
        jobs.done(job.job_id)
    else:
        jobs.fail(job.job_id, failure)
    return JobOutcome(jobs.get(job.job_id), report)
