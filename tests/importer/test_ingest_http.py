"""POST /ingest and GET /get_state against a real server: the job moves to done, or to FAILED
with a readable reason and nothing stored; the trace routes answer in docs/wire.md's shapes.
Those marked `blob_backends` run with the site's blobs in S3 too."""

import time

import pytest
import requests

from tests import bundle_kit as kit
from tests.live_importer import PASSWORD, config_for, serving
from tests.site_kit import blob_leftovers, open_test_site
from exporter.bundle_writer import write_bundle
from model.archive.selection import Selection

TIMEOUT = 10
JOB_KEYS = ["job_id", "state", "task", "task_percent", "created", "updated", "exception",
            "trace_id"]
EVENT_KEYS = ["trace_event_id", "trace_id", "domain", "domain_id", "start_time", "end_time",
              "trace_status", "trace_event_status", "user", "component", "operation",
              "status_body", "meta", "duration", "exception", "errors"]


@pytest.fixture
def site_a(tmp_path):
    opened = open_test_site(f"sqlite:///{tmp_path}/a.db", tmp_path / "a-blobs")
    kit.fill(opened.archive, events=3)
    yield opened
    opened.close()


@pytest.fixture
def importer(site, database_url, blob_settings, tmp_path):
    for name, roles in (("sender", ["import"]), ("other", ["import"]), ("reader", ["user"]),
                        ("admin", ["camera_admin"])):
        site.users.add(name, PASSWORD, roles)
    config = config_for(tmp_path, database_url, tmp_path / "blobs", **blob_settings)
    with serving(config, site) as (url, app):
        yield url


def auth(name):
    return (name, PASSWORD)


def post_bundle(url, body, user="sender", content_type="application/x-tar", headers=None):
    return requests.post(f"{url}/ingest", data=body, auth=auth(user), timeout=TIMEOUT,
                         headers={"Content-Type": content_type, **(headers or {})})


def wait_for_job(url, job_id, user="sender"):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/get_state", params={"job_id": job_id}, auth=auth(user),
                           timeout=TIMEOUT).json()
        if job["state"] == "FAILED" or job["task"] == "done":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.mark.blob_backends
def test_round_trip_over_http(site_a, site, importer, tmp_path):
    bundle = tmp_path / "a.tar.gz"
    write_bundle(site_a.archive, str(bundle), Selection(), gzip=True)
    with open(bundle, "rb") as body:  # a file object: requests streams it
        answer = post_bundle(importer, body, content_type="application/gzip",
                             headers={"X-Trace-Id": "sync-42"})
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert list(job) == JOB_KEYS
    assert (job["state"], job["task"], job["trace_id"]) == ("OK", "UPLOADING", "sync-42")
    assert job["exception"] == "" and isinstance(job["job_id"], int)

    done = wait_for_job(importer, job["job_id"])
    assert (done["state"], done["task"], done["task_percent"]) == ("OK", "done", "100.0")
    assert kit.snapshot(site) == kit.snapshot(site_a)
    assert list((tmp_path / "blobs" / "bundles").iterdir()) == []

    summary = requests.get(f"{importer}/status/sync-42", auth=auth("reader"), timeout=TIMEOUT)
    assert summary.json() == {"done": True, "trace_id": "sync-42", "trace_status": "FINISHED",
                              "trace_event_status": "OK"}
    history = requests.get(f"{importer}/status/sync-42/history", auth=auth("reader"),
                           timeout=TIMEOUT).json()
    assert all(list(event) == EVENT_KEYS for event in history)
    assert [e["start_time"] for e in history] == sorted(e["start_time"] for e in history)
    assert {e["domain"] for e in history} == {"status", "file", "event", "bundle"}
    assert all(e["user"] == "sender" and e["component"] == "importer" for e in history)
    file_id = next(iter(kit.snapshot(site)["files"]))
    assert requests.get(f"{importer}/status-from-path/{file_id}", auth=auth("reader"),
                        timeout=TIMEOUT).json() == {"trace_id": "sync-42"}


def _truncated(site_a, tmp_path):
    write_bundle(site_a.archive, str(tmp_path / "t.tar"), Selection())
    raw = (tmp_path / "t.tar").read_bytes()
    return raw[:len(raw) // 2]


def _corrupt(site_a, tmp_path):
    status, standalone, events, data = kit.sample_entities()
    last = events[-1].files[-1].file_id
    data[last] = b"\0" + data[last][1:]
    return kit.build_tar(kit.bundle_members(kit.metadata_of(status, standalone, events), data))


def _dot_dot(site_a, tmp_path):
    status, standalone, events, data = kit.sample_entities()
    members = kit.bundle_members(kit.metadata_of(status, standalone, events), data)
    return kit.build_tar(members + [("../escape", b"x")])


def _bad_metadata(site_a, tmp_path):
    status, standalone, events, data = kit.sample_entities()
    meta = kit.metadata_of(status, standalone, events)
    meta["statuses"][0]["location"]["lat"] = "north"
    return kit.build_tar(kit.bundle_members(meta, data))


@pytest.mark.blob_backends
@pytest.mark.parametrize("make, reason", [
    (_corrupt, "is corrupt: its MD5 is"), (_bad_metadata, "statuses[0].location.lat"),
    (_dot_dot, "unsafe member '../escape'"), (_truncated, "truncated or corrupt")],
    ids=["corrupt", "bad-metadata", "dot-dot", "truncated"])
def test_bad_bundles_fail_their_job_and_store_nothing(site_a, site, importer, tmp_path, make,
                                                     reason):
    before = blob_leftovers(site)
    answer = post_bundle(importer, make(site_a, tmp_path))
    assert answer.status_code == 202
    job = wait_for_job(importer, answer.json()["job_id"])
    assert job["state"] == "FAILED" and reason in job["exception"], job
    assert blob_leftovers(site) == before
    assert list((tmp_path / "blobs" / "bundles").iterdir()) == []
    trace = requests.get(f"{importer}/status/{job['trace_id']}", auth=auth("reader"),
                         timeout=TIMEOUT).json()
    assert trace["trace_event_status"] == "FAILED"


def test_ingest_refusals_before_any_job(importer, site):
    tar = kit.build_tar([("metadata.json", b"{}")])
    cases = [
        (requests.post(f"{importer}/ingest", data=tar, timeout=TIMEOUT), 401, "authentication"),
        (post_bundle(importer, tar, user="reader"), 403, "lacks the role 'import'"),
        (post_bundle(importer, tar, content_type="application/json"), 415, "application/x-tar"),
        (post_bundle(importer, tar, headers={"X-Trace-Id": "bad id!"}), 400, "X-Trace-Id"),
        (post_bundle(importer, b""), 400, "empty"),
    ]
    for answer, status, words in cases:
        assert answer.status_code == status, answer.text
        assert answer.json()["state"] == "failed" and words in answer.json()["message"]


def test_bundle_over_the_limit_gets_413(site, database_url, tmp_path):
    site.users.add("sender", PASSWORD, ["import"])
    config = config_for(tmp_path, database_url, tmp_path / "blobs",
                        **{"importer.max_bundle_bytes": 4096})
    with serving(config, site) as (url, _):
        sized = post_bundle(url, b"\0" * 5000)
        assert sized.status_code == 413 and "max_bundle_bytes" in sized.json()["message"]
        chunked = post_bundle(url, iter([b"\0" * 3000, b"\0" * 3000]))  # no Content-Length
        assert chunked.status_code == 413, chunked.text
        job = requests.get(f"{url}/get_state", params={"job_id": chunked.json()["job_id"]},
                           auth=auth("sender"), timeout=TIMEOUT).json()
        assert job["state"] == "FAILED" and "max_bundle_bytes" in job["exception"]
    assert list((tmp_path / "blobs" / "bundles").iterdir()) == []


def test_get_state_is_for_the_poster_and_admins(importer, site):
    job_id = post_bundle(importer, kit.build_tar([("metadata.json", b"{}")])).json()["job_id"]
    assert wait_for_job(importer, job_id)["task"] == "done"
    assert wait_for_job(importer, job_id, user="admin")["task"] == "done"
    for params, user, status in (({"job_id": job_id}, "other", 403),
                                 ({"job_id": job_id}, "reader", 403),
                                 ({"job_id": 999999}, "sender", 404),
                                 ({"job_id": "x"}, "sender", 400), ({}, "sender", 400)):
        answer = requests.get(f"{importer}/get_state", params=params, auth=auth(user),
                              timeout=TIMEOUT)
        assert answer.status_code == status and answer.json()["state"] == "failed"


def test_trace_routes_refuse_unknown_and_unauthorised(importer):
    for path, status in (("/status/nope", 404), ("/status/nope/history", 404),
                         ("/status-from-path/" + "0" * 32, 404),
                         ("/status-from-path/not-an-id", 400)):
        answer = requests.get(importer + path, auth=auth("reader"), timeout=TIMEOUT)
        assert answer.status_code == status and answer.json()["state"] == "failed", path
    answer = requests.get(importer + "/status/nope", auth=auth("sender"), timeout=TIMEOUT)
    assert answer.status_code == 403


def test_a_job_left_by_a_dead_server_is_failed_when_the_next_starts(site, database_url,
                                                                    tmp_path):
    import subprocess
    import sys
    from model.ops.jobs import Jobs
    code = ("import sys; from model.store.database import Database; from model.ops.jobs import Jobs; "
            "print(Jobs(Database(sys.argv[1])).create('sender', 't1', task='validating')"
            ".job_id)")
    job_id = int(subprocess.run([sys.executable, "-c", code, database_url], check=True,
                                capture_output=True, text=True, timeout=60).stdout)
    spool = tmp_path / "blobs" / "bundles"
    spool.mkdir(parents=True)
    (spool / f"job-{job_id}.bundle").write_bytes(b"half a bundle")
    site.users.add("sender", PASSWORD, ["import"])
    with serving(config_for(tmp_path, database_url, tmp_path / "blobs"), site) as (url, _):
        job = requests.get(f"{url}/get_state", params={"job_id": job_id}, auth=auth("sender"),
                           timeout=TIMEOUT).json()
    assert job["state"] == "FAILED" and "stopped before it finished" in job["exception"]
    assert job["task"] == "validating"
    assert list(spool.iterdir()) == []
    assert Jobs(site.database).get(job_id).state == "FAILED"
