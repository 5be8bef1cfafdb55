"""The background workers that ingest bundles posted to /ingest.

A bounded thread pool inside each server process: `importer.ingest_workers` threads, and at
most `importer.ingest_queue` more bundles waiting for one (further posts get 503 before any
byte is uploaded). Threads, not processes, because an ingest spends its time in I/O (reading
the tar, writing blobs, the database), and because a separate worker process would need a
queue, supervision and a deployment of its own to reach the same guarantees: a job whose
process dies is marked FAILED by the next process that starts (model.ops.jobs), and its spooled
bundle is removed then.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from model.bundles.ingest import IngestLimits
from model.bundles.jobs import run_ingest_job
from model.ops.jobs import Job
from model.site import Site

log = logging.getLogger("skyrelay.ingest")


class IngestPool:
    def __init__(self, site: Site, limits: IngestLimits, spool: Path, workers: int,
                 queue: int):
        self.site, self.limits, self.spool = site, limits, spool
        self.spool.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="skyrelay-ingest")
        self._slots = threading.BoundedSemaphore(workers + queue)

    def spool_path(self, job_id: int) -> Path:
        return self.spool / f"job-{job_id}.bundle"

    def reserve(self) -> bool:
        """A place for one more bundle (taken before its upload starts), or False if full."""
        return self._slots.acquire(blocking=False)

    def release(self) -> None:
        self._slots.release()

    def submit(self, job: Job) -> None:
        """Ingest the job's spooled bundle in the background; the reserved place is released
        and the spooled file removed when it ends."""
        self._executor.submit(self._run, job)

    def _run(self, job: Job) -> None:
        try:
            run_ingest_job(self.site, job, "importer", self.limits,
                           before_finish=lambda: Path(job.bundle_path).unlink(missing_ok=True))
        finally:
            Path(job.bundle_path).unlink(missing_ok=True)  # if the ingest itself broke
            self.release()

    def recover(self) -> None:
        """At start: fail the jobs whose process died, and remove spooled bundles that no
        running job will read any more."""
        jobs = self.site.jobs
        for job in jobs.fail_unfinished_on_start():
            log.warning("job %s was left unfinished by %s: marked FAILED", job.job_id, job.owner)
        for path in self.spool.glob("job-*.bundle"):
            job_id = path.name[len("job-"):-len(".bundle")]
            job = jobs.get(int(job_id)) if job_id.isdigit() else None
            if job is None or job.finished:
                path.unlink(missing_ok=True)

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait)
