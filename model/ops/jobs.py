"""Jobs: long work (a bundle ingest) that a client starts, then polls with GET /get_state.

A job is OK until it fails; its `task` says where it is (UPLOADING, validating, ingest files,
ingest metadata, done). The process running a job is written into it (`owner`, host:pid:start time), so
that a process that starts can tell a job whose runner died (FAILED, with a clear exception)
from one that another live process on the same machine is still running.
"""

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sqlalchemy import insert, select, update

from model.protocol.errors import Invalid
from model.store import schema
from model.store.database import Database, now_ms

OK, FAILED = "OK", "FAILED"
UPLOADING, VALIDATING, INGEST_FILES, INGEST_METADATA, DONE = (
    "UPLOADING", "validating", "ingest files", "ingest metadata", "done")
TASKS = (UPLOADING, VALIDATING, INGEST_FILES, INGEST_METADATA, DONE)
JOB_ID_MAX = 2 ** 31 - 1    # jobs.job_id is an INTEGER column: 32 bits on PostgreSQL
CRASHED = ("the process running this job ({owner}) stopped before it finished; nothing of the "
           "bundle was stored. Send the bundle again.")


class JobError(Invalid):
    """A job command cannot be done (unknown job, bad state); the message says why."""


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if the
    process does not exist. Raises OSError where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return text.rsplit(")", 1)[1].split()


def this_process() -> str:
    """host:pid:start — the start time (clock ticks since boot, Linux) tells this process
    from a later one that was given the same pid."""
    try:
        start = (_proc_stat(os.getpid()) or [""] * 20)[19]
    except OSError:
        start = ""
    return f"{socket.gethostname()}:{os.getpid()}:{start}"


def owner_alive(owner: str) -> bool:
    """False if `owner` was a process of this machine that is gone: no such pid, a zombie (a
    killed worker whose parent died too is never reaped in a container without an init), or
    a pid now used by a process started at another time. A process of another machine
    cannot be checked from here and is taken to be alive."""
    host, _, rest = owner.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        stat = _proc_stat(int(pid))
    except OSError:  # no /proc: ask the kernel directly
        return _signal_alive(int(pid))
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return not start or stat[19] == start


def _signal_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clock(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


@dataclass(frozen=True)
class Job:
    job_id: int
    user: str
    state: str
    task: str
    task_percent: float
    created: int
    updated: int
    exception: str
    trace_id: str
    bundle_path: str
    owner: str

    @property
    def finished(self) -> bool:
        return self.state == FAILED or self.task == DONE

    def to_json(self) -> dict:
        """The job shape of docs/wire.md (times in UTC, percent as a string like "12.5")."""
        return {"job_id": self.job_id, "state": self.state, "task": self.task,
                "task_percent": f"{self.task_percent:.1f}", "created": _clock(self.created),
                "updated": _clock(self.updated), "exception": self.exception,
                "trace_id": self.trace_id}


class Jobs:
    def __init__(self, database: Database):
        self.db = database

    def create(self, user: str, trace_id: str, bundle_path: str = "",
               task: str = UPLOADING) -> Job:
        now = now_ms()
        with self.db.transaction() as tx:
            job_id = tx.execute(insert(schema.jobs).values(
                user=user, state=OK, task=task, task_percent=0.0, created=now, updated=now,
                exception="", trace_id=trace_id, bundle_path=bundle_path,
                owner=this_process())).inserted_primary_key[0]
        return self.get(job_id)

    def get(self, job_id: int) -> Job | None:
        if not 0 < job_id <= JOB_ID_MAX:    # no such job (and PostgreSQL refuses the query)
            return None
        with self.db.reading() as conn:
            row = conn.execute(select(schema.jobs).where(schema.jobs.c.job_id == job_id)).first()
        return None if row is None else Job(**row._mapping)

    def advance(self, job_id: int, task: str, percent: float = 0.0) -> None:
        """Move a running job on; a job that has FAILED stays failed."""
        self._update(job_id, {"task": task, "task_percent": _percent(percent)},
                     only_running=True)

    def set_bundle_path(self, job_id: int, path: str) -> None:
        self._update(job_id, {"bundle_path": path}, only_running=False)

    def done(self, job_id: int) -> None:
        self.advance(job_id, DONE, 100.0)

    def fail(self, job_id: int, exception: str) -> None:
        """FAILED, keeping the task it failed in (so the client sees where it stopped)."""
        self._update(job_id, {"state": FAILED, "exception": exception or "failed"},
                     only_running=True)

    def set(self, job_id: int, state: str | None = None, task: str | None = None,
            task_percent: float | None = None, exception: str | None = None) -> Job:
        """An administrator's override, for a job stuck in a state nothing will change."""
        if self.get(job_id) is None:
            raise JobError(f"no job {job_id}")
        if state is not None and state not in (OK, FAILED):
            raise JobError(f"state must be OK or FAILED, got {state!r}")
        if task is not None and task not in TASKS:
            raise JobError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if task_percent is not None and not 0 <= task_percent <= 100:
            raise JobError(f"task percent must be between 0 and 100, got {task_percent}")
        values = {key: value for key, value in (
            ("state", state), ("task", task), ("task_percent", task_percent),
            ("exception", exception)) if value is not None}
        self._update(job_id, values, only_running=False)
        return self.get(job_id)

    def fail_unfinished_on_start(
            self, alive: Callable[[str], bool] = owner_alive) -> list[Job]:
        """Mark FAILED every unfinished job whose process is gone; returns them (so the caller
        can remove their spooled bundles)."""
        j = schema.jobs.c
        with self.db.reading() as conn:
            rows = conn.execute(select(schema.jobs).where(j.state == OK, j.task != DONE)).all()
        failed = []
        for job in (Job(**row._mapping) for row in rows):
            if not alive(job.owner):
                self._update(job.job_id, {"state": FAILED,
                                          "exception": CRASHED.format(owner=job.owner)},
                             only_running=True)
                failed.append(self.get(job.job_id))
        return failed

    def _update(self, job_id: int, values: dict, only_running: bool) -> None:
        j = schema.jobs.c
        where = [j.job_id == job_id]
        if only_running:
            where.append(j.state == OK)
        with self.db.transaction() as tx:
            tx.execute(update(schema.jobs).where(*where).values(updated=now_ms(), **values))


def _percent(value: float) -> float:
    return round(min(100.0, max(0.0, float(value))), 1)
