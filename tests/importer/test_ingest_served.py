"""POST /ingest on the program as users run it (`skyrelay serve`, gunicorn): a bundle round
trip, and a server killed mid-upload whose job the next start marks FAILED."""

import os
import signal
import threading
import time

import requests

from tests import bundle_kit as kit
from tests.server import Server
from tests.site_kit import open_test_site
from exporter.bundle_writer import write_bundle
from model.archive.selection import Selection

TIMEOUT = 10


def job_state(server, job_id):
    return requests.get(f"{server.url}/get_state", params={"job_id": job_id},
                        auth=server.auth("sender"), timeout=TIMEOUT).json()


def wait(server, job_id, until):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = job_state(server, job_id)
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id}: {job}")


def test_served_round_trip_then_a_killed_server_fails_its_job(tmp_path):
    source = open_test_site(f"sqlite:///{tmp_path}/a.db", tmp_path / "a-blobs")
    kit.fill(source.archive, events=3)
    write_bundle(source.archive, str(tmp_path / "a.tar"), Selection())
    server = Server(tmp_path / "b", users={"sender": ["import"]}).start()
    try:
        with open(tmp_path / "a.tar", "rb") as body:
            answer = requests.post(f"{server.url}/ingest", data=body, auth=server.auth("sender"),
                                   headers={"Content-Type": "application/x-tar"},
                                   timeout=TIMEOUT)
        assert answer.status_code == 202, answer.text
        assert answer.headers["X-Trace-Id"] == answer.json()["trace_id"]
        done = wait(server, answer.json()["job_id"], lambda j: j["task"] == "done")
        assert done["state"] == "OK"
        target = server.open_site()
        assert kit.snapshot(target) == kit.snapshot(source)
        target.close()

        release = threading.Event()

        def endless():  # an upload that stops half-way and never ends
            yield b"\0" * 65536
            release.wait(30)

        uploader = threading.Thread(target=lambda: _post_quietly(server, endless()))
        uploader.start()
        hanging = wait(server, 2, lambda j: j.get("task") == "UPLOADING")
        assert hanging["state"] == "OK"
        # The job is UPLOADING from its creation, a moment before its spool file is opened.
        spool = tmp_path / "b" / "blobs" / "bundles"
        deadline = time.monotonic() + 10
        while not any(spool.glob("*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        release.set()
        uploader.join(10)
    finally:
        server.stop()
    assert list((tmp_path / "b" / "blobs" / "bundles").iterdir()) != []  # left by the crash

    restarted = Server(tmp_path / "b", users={}).start()
    restarted.users = {"sender": ["import"]}
    try:
        failed = job_state(restarted, 2)
        assert failed["state"] == "FAILED" and failed["task"] == "UPLOADING"
        assert "stopped before it finished" in failed["exception"]
        assert list((tmp_path / "b" / "blobs" / "bundles").iterdir()) == []
        assert job_state(restarted, 1)["task"] == "done"
    finally:
        restarted.stop()
        source.close()


def _post_quietly(server, body):
    try:
        requests.post(f"{server.url}/ingest", data=body, auth=server.auth("sender"),
                      headers={"Content-Type": "application/x-tar"}, timeout=TIMEOUT)
    except requests.RequestException:
        pass  # the server was killed under it: that is the point
