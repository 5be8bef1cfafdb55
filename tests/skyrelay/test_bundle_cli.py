"""The `skyrelay bundle`, `job` and `status` commands, run as the real program."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import bundle_kit as kit
from tests.site_kit import open_test_site

REPO = Path(__file__).resolve().parents[2]


def run(cwd, *args, ok=True, input_text=None):
    result = subprocess.run([sys.executable, "-m", "skyrelay", *args], cwd=cwd, text=True,
                            capture_output=True, timeout=120, input=input_text,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert (result.returncode == 0) == ok, (result.stdout, result.stderr)
    return result


@pytest.fixture
def two_sites(tmp_path):
    """Folders a and b, each a site with the default configuration (SQLite under var/)."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    site = open_test_site(f"sqlite:///{tmp_path}/a/var/skyrelay.db", tmp_path / "a/var/blobs")
    kit.fill(site.archive, events=3)
    site.close()
    return tmp_path / "a", tmp_path / "b"


def open_folder(folder):
    return open_test_site(f"sqlite:///{folder}/var/skyrelay.db", folder / "var/blobs")


def test_create_ingest_status_and_job(two_sites, tmp_path):
    a, b = two_sites
    made = run(a, "bundle", "create", str(tmp_path / "x.tar.gz"), "--gzip")
    assert "1 statuses, 3 events, 7 files" in made.stdout

    ingested = run(b, "bundle", "ingest", str(tmp_path / "x.tar.gz"), "--trace-id", "cli-1")
    assert "5 stored" in ingested.stdout  # 1 status, 1 standalone file, 3 events
    site_a, site_b = open_folder(a), open_folder(b)
    assert kit.snapshot(site_b) == kit.snapshot(site_a)
    site_a.close(), site_b.close()

    table = run(b, "status", "cli-1").stdout.splitlines()
    assert [c.strip() for c in table[0].split("|")] == ["Done", "Trace ID", "Trace status",
                                                        "Trace event status"]
    assert [c.strip() for c in table[2].split("|")] == ["yes", "cli-1", "FINISHED", "OK"]
    full = json.loads(run(b, "status", "cli-1", "--history", "--format", "json").stdout)
    assert full["trace_status"] == "FINISHED" and len(full["history"]) == 6
    assert "store" in run(b, "status", "cli-1", "--history").stdout
    assert "no trace" in run(b, "status", "nope", ok=False).stderr

    job = json.loads(run(b, "job", "show", "1").stdout)
    assert (job["state"], job["task"], job["trace_id"]) == ("OK", "done", "cli-1")
    changed = json.loads(run(b, "job", "set", "1", "--state", "FAILED", "--task", "validating",
                             "--task-percent", "40", "--exception", "stuck").stdout)
    assert (changed["state"], changed["task"], changed["task_percent"],
            changed["exception"]) == ("FAILED", "validating", "40.0", "stuck")
    assert "no job 7" in run(b, "job", "show", "7", ok=False).stderr
    assert "nothing to change" in run(b, "job", "set", "1", ok=False).stderr


def test_a_refused_bundle_exits_non_zero_with_the_reason(two_sites, tmp_path):
    _, b = two_sites
    status, standalone, events, data = kit.sample_entities()
    members = kit.bundle_members(kit.metadata_of(status, standalone, events), data)
    (tmp_path / "evil.tar").write_bytes(kit.build_tar(members + [("data/../../x", b"x")]))
    refused = run(b, "bundle", "ingest", str(tmp_path / "evil.tar"), ok=False)
    assert "bundle refused: unsafe member 'data/../../x'" in refused.stderr
    assert "job 1, trace" in refused.stderr
    site = open_folder(b)
    assert site.archive.counts() == {"statuses": 0, "events": 0, "files": 0, "blobs": 0,
                                     "staged": 0}
    site.close()


def test_create_with_a_targets_filter_or_iso_times(two_sites, tmp_path):
    a, _ = two_sites
    run(a, "target", "add", "t", "--url", "http://127.0.0.1:9/import", "--user", "u",
        "--password-stdin", "--event-type", "meteor", "--after", "1427891460000",
        input_text="a-long-password\n")
    assert "1 statuses, 2 events, 4 files" in run(a, "bundle", "create", "x.tar", "--target",
                                                  "t").stdout
    # 1427891460000 ms is 2015-04-01T12:31:00Z: the same window written as ISO 8601
    iso = run(a, "bundle", "create", "y.tar", "--event-type", "meteorpi:meteor", "--after",
              "2015-04-01T12:31:00Z").stdout
    assert "1 statuses, 2 events, 4 files" in iso
    assert "either --target or filter" in run(a, "bundle", "create", "z.tar", "--target", "t",
                                              "--camera", "x", ok=False).stderr
    assert "no export target 'nope'" in run(a, "bundle", "create", "z.tar", "--target", "nope",
                              ok=False).stderr
