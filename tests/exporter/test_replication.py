"""End to end: real `skyrelay serve` sites on loopback, the real `skyrelay sync` command.

Full replication, a second sync that sends nothing, target filters, multi-hop A → B → C,
an importer down or killed mid-sync, an exporter killed mid-sync, and passwords that never
show up in output, logs or /api/targets.
"""

import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.server import Server, password_of, server_factory  # noqa: F401  (fixture)
from model.archive.sample import SampleWriter
from model.export.queue import ExportQueue
from model.export.targets import Targets
from model.site import open_site
from skyrelay import config as config_module
from skyrelay.demo import verify
from skyrelay.sites import LocalSite

FAST = {"exporter.timeout_s": 5, "exporter.backoff_base_s": 1}


def fill(server, seed: int = 1, **shape):
    """Generated data in a site's archive (migrated first: the site need not be running)."""
    loaded = config_module.load(server.config_path, environ={})
    site = open_site(loaded)
    try:
        shape = {"cameras": 2, "events_per_camera": 3, "files_per_event": 2,
                 "standalone_per_camera": 1, **shape}
        return SampleWriter(site.archive, seed=seed).fill(**shape)
    finally:
        site.close()


def add_target(exporter, importer, name="b", *options, user="exporter"):
    return exporter.cli("target", "add", name, "--url", importer.import_url, "--user", user,
                        "--password-stdin", *options, stdin=password_of(user) + "\n")


def sync(exporter, *args, check=False):
    progress = [] if "--progress" in args else ["--no-progress"]
    return exporter.cli("sync", *progress, *args, check=check)


def queue_counts(server, name="b"):
    loaded = config_module.load(server.config_path, environ={})
    site = open_site(loaded, migrate=False)
    try:
        return ExportQueue(site.database).counts(Targets(site.database).get(name).target_id)
    finally:
        site.close()


def target_of(server, name="b"):
    loaded = config_module.load(server.config_path, environ={})
    site = open_site(loaded, migrate=False)
    try:
        return Targets(site.database).get(name)
    finally:
        site.close()


def posts(server) -> int:
    return sum(" POST /import" in line for line in server.log().splitlines())


def test_full_replication_and_a_second_sync_sends_nothing(tmp_path, server_factory):
    a = Server(tmp_path / "a", settings=FAST)
    generated = fill(a)
    b = server_factory("b", users={"exporter": ["import", "user"]})
    add_target(a, b)
    first = sync(a, "--progress")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "sent 8, already present 0, failed 0" in first.stdout
    assert "8/8" in first.stderr and "entity/s" in first.stderr   # the progress bar
    checked = verify(b.url, b.auth("exporter"), generated)
    assert checked.problems == [] and checked.files_matched == 14
    assert b.counts()["statuses"] == 2 and b.counts()["staged"] == 0
    before = posts(b)
    second = sync(a)
    assert second.returncode == 0 and "sent 0, already present 0, failed 0" in second.stdout
    assert posts(b) == before                       # not one request for what was done
    for text in (first.stdout, first.stderr, b.log(), a.cli("target", "list").stdout,
                 a.cli("target", "show", "b").stdout):
        assert password_of("exporter") not in text


def test_a_target_filter_sends_only_matching_events(tmp_path, server_factory):
    a = Server(tmp_path / "a", settings=FAST)
    generated = fill(a, events_per_camera=4)
    b = server_factory("b", users={"exporter": ["import", "user"]})
    add_target(a, b, "b", "--camera", "cam001", "--event-type", "meteorpi:meteor")
    result = sync(a)
    assert result.returncode == 0 and "sent 2," in result.stdout
    wanted = {e.event_id for e in generated.events
              if e.camera_id == "cam001" and e.event_type == "meteorpi:meteor"}
    assert len(wanted) == 2
    listed = requests.get(b.url + "/api/events", auth=b.auth("exporter"), timeout=10).json()
    assert {e["event_id"] for e in listed["events"]} == wanted
    assert b.counts()["files"] == 4                 # their files; no standalone files


def test_multi_hop_a_to_b_to_c(tmp_path, server_factory):
    a = Server(tmp_path / "a", settings=FAST)
    generated = fill(a)
    c = server_factory("c", users={"relay": ["import", "user"]})
    b = server_factory("b", users={"exporter": ["import", "user"], "admin": ["camera_admin"]},
                       settings=FAST)
    add_target(a, b)
    add_target(b, c, "c", user="relay")
    assert sync(a).returncode == 0
    onward = sync(b)
    assert onward.returncode == 0 and "sent 8," in onward.stdout, onward.stdout
    assert verify(c.url, c.auth("relay"), generated).problems == []
    # the copies on C are byte-identical entities: same content hash as on A
    for server in (a, c):
        loaded = config_module.load(server.config_path, environ={})
        site = open_site(loaded, migrate=False)
        server.hashes = {e.event_id: site.archive.held_hash("event", e.event_id)
                         for e in generated.events}
        site.close()
    assert a.hashes == c.hashes and None not in c.hashes.values()
    shown = requests.get(b.url + "/api/targets", auth=b.auth("admin"), timeout=10)
    assert shown.status_code == 200 and shown.json()["targets"][0]["name"] == "c"
    assert password_of("relay") not in shown.text and "password" not in shown.text
    assert password_of("relay") not in b.log()


def test_target_check_against_a_served_site(tmp_path, server_factory):
    a = Server(tmp_path / "a", settings=FAST)
    b = server_factory("b", users={"exporter": ["import"], "reader": ["user"]})
    add_target(a, b)
    add_target(a, b, "reader", user="reader")
    a.cli("target", "add", "wrong", "--url", b.import_url, "--user", "exporter",
          "--password-stdin", stdin="not-the-password\n")
    good = a.cli("target", "check", "b", check=False)
    assert good.returncode == 0 and "ok:" in good.stdout, good.stderr
    forbidden = a.cli("target", "check", "reader", check=False)
    assert forbidden.returncode == 1 and "forbidden (403)" in forbidden.stderr
    refused = a.cli("target", "check", "wrong", check=False)
    assert refused.returncode == 1 and "authentication failed (401)" in refused.stderr
    for result in (good, forbidden, refused):
        assert password_of("exporter") not in result.stdout + result.stderr


@pytest.fixture
def importer(tmp_path):
    """Site B as a LocalSite: it can be killed and restarted on the same port."""
    site = LocalSite(tmp_path / "b", "b")
    opened = site.open()
    opened.users.add("exporter", password_of("exporter"), ["import", "user"])
    opened.close()
    yield site
    site.stop()


def test_importer_down_backs_off_and_a_later_sync_completes(tmp_path, importer):
    a = Server(tmp_path / "a", settings={**FAST, "exporter.backoff_base_s": 3})
    generated = fill(a)
    importer.start()
    add_target(a, importer)
    port = importer.port
    importer.stop()
    down = sync(a)
    assert down.returncode == 1
    assert "cannot connect" in down.stderr and "backing off 3 s" in down.stderr
    waiting = sync(a)
    assert waiting.returncode == 1 and "backing off after 1 failures" in waiting.stderr
    importer.start(port=port)
    retry_at = target_of(a).next_attempt_ms / 1000
    time.sleep(max(0.0, retry_at - time.time()) + 0.05)
    later = sync(a)
    assert later.returncode == 0 and "sent 8," in later.stdout, later.stderr
    assert target_of(a).failures == 0
    assert verify(importer.url, ("exporter", password_of("exporter")), generated).problems == []


def start_sync(exporter) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "skyrelay", "--config",
                             str(exporter.config_path), "sync", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=exporter.root, env=exporter._env())


def tried(summary: str) -> tuple[int, int]:
    """(sent, already present) from a sync's one-line summary."""
    sent = int(summary.split("sent ")[1].split(",")[0])
    return sent, int(summary.split("already present ")[1].split(",")[0])


def started_then_interrupted(tmp_path, importer):
    """Site A with 60 events syncing to `importer`; returns once 5 are done."""
    a = Server(tmp_path / "a", settings=FAST)
    generated = fill(a, cameras=1, events_per_camera=60, files_per_event=2,
                     standalone_per_camera=0)
    importer.start()
    add_target(a, importer, "b", "--protocol", "v1")   # one entity in flight at a time
    running = start_sync(a)
    wait_for_done(a, 5, running)
    return a, generated, running


def wait_for_done(exporter, at_least: int, process: subprocess.Popen) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        done = queue_counts(exporter)["done"]
        if done >= at_least:
            return done
        time.sleep(0.02)
    raise AssertionError("the sync finished (or hung) before it could be interrupted")


def test_importer_killed_mid_sync_then_the_next_sync_completes(tmp_path, importer):
    a, generated, running = started_then_interrupted(tmp_path, importer)
    port = importer.port
    importer.kill()
    out, err = running.communicate(timeout=60)
    assert running.returncode == 1 and "backing off" in err
    done = queue_counts(a)["done"]
    assert 5 <= done < 60
    importer.start(port=port)
    time.sleep(max(0.0, target_of(a).next_attempt_ms / 1000 - time.time()) + 0.05)
    again = sync(a)
    assert again.returncode == 0, again.stderr
    sent, present = tried(again.stdout)
    assert sent + present == 60 - done and present <= 1   # nothing done is sent again
    assert verify(importer.url, ("exporter", password_of("exporter")), generated).problems == []
    site = importer.open()
    assert site.archive.counts()["events"] == 60 and site.archive.counts()["files"] == 120
    site.close()


def test_exporter_killed_mid_sync_resumes_from_the_queue(tmp_path, importer):
    a, generated, running = started_then_interrupted(tmp_path, importer)
    running.send_signal(signal.SIGKILL)
    running.communicate(timeout=30)
    done = queue_counts(a)["done"]
    resumed = sync(a)                                # the dead holder's lock is taken over
    assert resumed.returncode == 0, resumed.stderr
    sent, present = tried(resumed.stdout)
    assert sent + present == 60 - done and present <= 1
    assert verify(importer.url, ("exporter", password_of("exporter")), generated).problems == []


def test_demo_replicates_and_verifies_every_byte(tmp_path):
    result = subprocess.run([sys.executable, "-m", "skyrelay", "demo", "--dir",
                             str(tmp_path / "demo"), "--no-progress"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path,
                            env={**Server(tmp_path / "unused")._env()})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo OK: 24/24 events and 57/57 files on b" in result.stdout
    assert "sync complete" in result.stdout
