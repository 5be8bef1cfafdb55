"""Trace events and jobs in the model, on SQLite and PostgreSQL."""

import subprocess
import sys

import pytest

from model.ops.jobs import FAILED, OK, JobError, Jobs, this_process
from model.ops.traces import (CONTINUE, FINISHED, TraceEvent, TraceIdError, Traces, check_trace_id)


def event(domain_id, status=OK, trace_status=FINISHED, start=1000, trace_id="t1", **extra):
    return TraceEvent(trace_id=trace_id, domain="event", domain_id=domain_id, operation="store",
                      component="test", trace_event_status=status, trace_status=trace_status,
                      start_time=start, **extra)


def test_history_is_oldest_first_and_round_trips_every_field(site):
    traces = Traces(site.database)
    late = event("b", start=2000, meta={"n": 1}, errors=["x"], exception="boom",
                 status_body='{"state":"failed"}', user="u", end_time=2500)
    traces.record(late, event("a", start=1000), event("c", start=1000, trace_id="other"))
    history = traces.history("t1")
    assert [e.domain_id for e in history] == ["a", "b"]
    assert history[1] == late and history[1].duration == 500
    assert history[1].to_json()["meta"] == {"n": 1} and history[1].to_json()["errors"] == ["x"]


def test_same_start_keeps_recording_order(site):
    traces = Traces(site.database)
    traces.record(*[event(str(i), start=5) for i in range(30)])
    assert [e.domain_id for e in traces.history("t1")] == [str(i) for i in range(30)]


def test_summary_is_finished_when_every_thing_is_and_failed_when_anything_failed(site):
    traces = Traces(site.database)
    assert traces.summary("t1") is None
    traces.record(event("a", trace_status=CONTINUE, start=1))
    assert traces.summary("t1") == {"done": False, "trace_id": "t1", "trace_status": CONTINUE,
                                    "trace_event_status": OK}
    traces.record(event("a", start=2), event("b", status=FAILED, start=3))
    assert traces.summary("t1") == {"done": True, "trace_id": "t1", "trace_status": FINISHED,
                                    "trace_event_status": FAILED}


def test_trace_ids_are_checked():
    assert check_trace_id("sync-2026.01:x_1") == "sync-2026.01:x_1"
    for bad in ("", "a b", "x" * 65, "é"):
        with pytest.raises(TraceIdError):
            check_trace_id(bad)


def test_job_lifecycle_and_shape(site):
    jobs = Jobs(site.database)
    job = jobs.create("alice", "t1", bundle_path="/x.tar")
    assert job.to_json() == {"job_id": job.job_id, "state": OK, "task": "UPLOADING",
                             "task_percent": "0.0", "created": job.to_json()["created"],
                             "updated": job.to_json()["updated"], "exception": "",
                             "trace_id": "t1"}
    assert len(job.to_json()["created"]) == len("2026-01-25 16:54:50")
    jobs.advance(job.job_id, "ingest files", 12.345)
    assert jobs.get(job.job_id).to_json()["task_percent"] == "12.3"
    jobs.fail(job.job_id, "data/x is corrupt")
    jobs.advance(job.job_id, "done", 100)   # a failed job stays failed where it failed
    failed = jobs.get(job.job_id)
    assert (failed.state, failed.task, failed.exception) == (FAILED, "ingest files",
                                                            "data/x is corrupt")
    assert jobs.get(job.job_id + 1000) is None


def test_admin_set_checks_its_input(site):
    jobs = Jobs(site.database)
    job = jobs.create("alice", "t1")
    changed = jobs.set(job.job_id, state=FAILED, task="validating", task_percent=50,
                       exception="stuck since Monday")
    assert (changed.state, changed.task, changed.task_percent, changed.exception) == (
        FAILED, "validating", 50.0, "stuck since Monday")
    for kwargs, words in (({"state": "MAYBE"}, "state"), ({"task": "dancing"}, "task"),
                          ({"task_percent": 101}, "percent")):
        with pytest.raises(JobError, match=words):
            jobs.set(job.job_id, **kwargs)
    with pytest.raises(JobError, match="no job"):
        jobs.set(job.job_id + 1000, state=FAILED)
    assert jobs.get(job.job_id) == changed


def test_a_job_whose_process_died_is_failed_at_the_next_start(site, database_url):
    """A real process creates a job and exits without finishing it."""
    code = ("import sys; from model.store.database import Database; from model.ops.jobs import Jobs; "
            "j = Jobs(Database(sys.argv[1])).create('bob', 't9', task='ingest files'); "
            "print(j.job_id)")
    dead_id = int(subprocess.run([sys.executable, "-c", code, database_url], check=True,
                                 capture_output=True, text=True, timeout=60).stdout)
    jobs = Jobs(site.database)
    alive = jobs.create("alice", "t1")   # this process: still running it
    done = jobs.create("alice", "t2")
    jobs.done(done.job_id)

    failed = jobs.fail_unfinished_on_start()

    assert [job.job_id for job in failed] == [dead_id]
    dead = jobs.get(dead_id)
    assert dead.state == FAILED and dead.task == "ingest files"
    assert "stopped before it finished" in dead.exception and dead.owner in dead.exception
    assert jobs.get(alive.job_id).state == OK and jobs.get(done.job_id).task == "done"
    assert alive.owner == this_process()
    assert jobs.fail_unfinished_on_start() == []


def test_owner_liveness_tells_a_reused_pid_and_other_machines():
    from model.ops.jobs import owner_alive
    me = this_process()
    host, pid, start = me.split(":")
    assert owner_alive(me)
    assert not owner_alive(f"{host}:{pid}:{int(start) + 1}")   # same pid, another process
    assert owner_alive(f"elsewhere-{host}:{pid}:1")             # cannot be checked: alive
