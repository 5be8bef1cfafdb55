"""A sync's trace ID answers on both sites: the exporter's own events (the run, every entity it
tried) and the importer's (every entity it stored); `skyrelay status --target` asks the
target's site. Real `skyrelay serve` and `skyrelay sync`."""

import dataclasses
import json
import re

import requests

from tests.exporter.test_replication import FAST, add_target, fill, sync
from tests.server import Server, password_of, server_factory  # noqa: F401  (fixture)
from model.protocol.entities import Meta
from model.site import open_site
from skyrelay import config as config_module


def trace_of(result) -> str:
    return re.search(r"trace ([0-9a-f]{32})", result.stdout).group(1)


def local_status(server, trace_id, *args, check=True):
    return server.cli("status", trace_id, *args, check=check)


def test_a_sync_trace_answers_on_both_sites(tmp_path, server_factory):
    a = Server(tmp_path / "a", settings=FAST)
    generated = fill(a, cameras=1, events_per_camera=2, standalone_per_camera=1)
    b = server_factory("b", users={"exporter": ["import", "user"]})
    add_target(a, b)
    result = sync(a)
    assert result.returncode == 0, result.stdout + result.stderr
    trace_id = trace_of(result)

    mine = json.loads(local_status(a, trace_id, "--history", "--format", "json").stdout)
    assert (mine["done"], mine["trace_status"], mine["trace_event_status"]) == (
        True, "FINISHED", "OK")
    run = [e for e in mine["history"] if e["domain"] == "bundle"]
    assert [(e["operation"], e["domain_id"], e["trace_status"]) for e in run] == [
        ("sync", "b", "CONTINUE"), ("sync", "b", "FINISHED")]
    assert run[1]["meta"]["sent"] == 3 and run[1]["component"] == "exporter"
    sent = {(e["domain"], e["domain_id"]) for e in mine["history"]
            if e["operation"] == "send" and e["trace_event_status"] == "OK"}
    moved = ({("event", e.event_id) for e in generated.events}
             | {("file", f.file_id) for f in generated.files}
             | {("status", s.status_id) for s in generated.statuses})
    assert sent == moved

    theirs = requests.get(f"{b.url}/status/{trace_id}/history", auth=b.auth("exporter"),
                          timeout=10).json()
    stored = {(e["domain"], e["domain_id"]) for e in theirs if e["operation"] == "store"}
    assert stored == moved
    assert {e["user"] for e in theirs} == {"exporter"}

    both = json.loads(local_status(a, trace_id, "--target", "b", "--format", "json").stdout)
    assert both["target"]["name"] == "b" and both["target"]["trace_status"] == "FINISHED"
    assert both["local"]["trace_id"] == both["target"]["trace_id"] == trace_id
    table = local_status(a, trace_id, "--target", "b").stdout
    assert "this site:" in table and "target b:" in table and table.count(trace_id) == 2


def test_a_conflicting_resend_is_failed_on_the_importer_with_both_hashes(tmp_path,
                                                                         server_factory):
    a = Server(tmp_path / "a", settings=FAST)
    generated = fill(a, cameras=1, events_per_camera=1, standalone_per_camera=0)
    b = server_factory("b", users={"exporter": ["import", "user"]})
    original = generated.events[0]
    _store_other_version(a, b, original)
    add_target(a, b)
    result = sync(a)
    assert result.returncode == 0, result.stdout + result.stderr   # the importer said complete
    trace_id = trace_of(result)

    theirs = requests.get(f"{b.url}/status/{trace_id}/history", auth=b.auth("exporter"),
                          timeout=10).json()
    [conflict] = [e for e in theirs if e["operation"] == "conflict"]
    assert (conflict["domain"], conflict["domain_id"], conflict["trace_event_status"]) == (
        "event", original.event_id, "FAILED")
    assert conflict["meta"]["held_hash"] != conflict["meta"]["new_hash"]
    assert requests.get(f"{b.url}/status/{trace_id}", auth=b.auth("exporter"),
                        timeout=10).json()["trace_event_status"] == "FAILED"


def _store_other_version(a, b, event):
    """Site b holds `event`'s ID with other meta (and the same status and bytes)."""
    source = open_site(config_module.load(a.config_path, environ={}))
    target = open_site(config_module.load(b.config_path, environ={}))
    try:
        target.archive.add_status(source.archive.get_status(event.status_id))
        for record in event.files:
            stream, _ = source.archive.open_data(record.file_id)
            with stream:
                assert target.archive.stage_bytes(record.file_id, record.md5, stream).received
        other = dataclasses.replace(event, meta=(Meta("string", "meteorpi:note", "other"),))
        target.archive.import_event(other)
    finally:
        source.close()
        target.close()


def test_a_target_that_is_down_is_a_failed_run_with_the_reason(tmp_path):
    a = Server(tmp_path / "a", settings=FAST)
    fill(a, cameras=1, events_per_camera=1, standalone_per_camera=0)
    a.cli("target", "add", "gone", "--url", "http://127.0.0.1:9/import", "--user", "exporter",
          "--password-stdin", stdin=password_of("exporter") + "\n")
    result = sync(a)
    assert result.returncode == 1
    trace_id = trace_of(result)
    mine = json.loads(local_status(a, trace_id, "--history", "--format", "json").stdout)
    assert mine["trace_event_status"] == "FAILED" and mine["done"] is True
    deferred, = [e for e in mine["history"] if e["operation"] == "deferred"]
    assert "cannot connect" in deferred["exception"]
    run = [e for e in mine["history"] if e["domain"] == "bundle"][-1]
    assert run["trace_event_status"] == "FAILED" and "cannot connect" in run["exception"]
    asked = local_status(a, trace_id, "--target", "gone", check=False)
    assert asked.returncode == 1 and "target gone: cannot connect" in asked.stderr
