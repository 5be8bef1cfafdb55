"""Two `skyrelay sync` processes for the same target of one exporter site on PostgreSQL,
started at once (two cron jobs overlapping, or the same job on two exporter machines).

What the code does (model/export/locks.py, exporter/sync.py): a sync first takes the
target's lock, a row in `sync_locks` (its primary key is the target, so of two concurrent
inserts PostgreSQL lets one through). The other process does not share the queue: it reports
the target busy, names the holder, sends nothing and exits 0 — overlapping with a running
sync is not a failure. (`ExportQueue.claim`'s FOR UPDATE SKIP LOCKED serves the two lanes of
the one sync that holds the lock.) docs/scale-out.md says why.
"""

import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from model.archive.sample import SampleWriter
from model.site import open_site
from skyrelay import config as config_module
from tests.server import Server, password_of, server_factory  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow
SHAPE = {"cameras": 2, "events_per_camera": 10, "files_per_event": 2,
         "standalone_per_camera": 2}        # 24 entities, 44 small PNG files (≈65 KB)
ENTITIES = 24
# File data at 16 KiB/s: the winner's sync lasts seconds, so the two surely overlap.
BWLIMIT = "16K"


def sync_process(site: Server) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "skyrelay", "--config",
                             str(site.config_path), "sync", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=site.root, env=site._env())


def trace_of(stderr: str) -> str:
    return stderr.split("sync starting, trace ")[1].split()[0]


def test_the_second_sync_of_a_target_says_busy_and_sends_nothing(tmp_path, pg_cluster,
                                                                server_factory):
    database_url = pg_cluster.url(pg_cluster.new_database(pg_cluster.template))
    exporter = Server(tmp_path / "a", settings={"database.url": database_url,
                                                "exporter.timeout_s": 30})
    site = open_site(config_module.load(exporter.config_path, environ={}))
    try:
        SampleWriter(site.archive, seed=5).fill(**SHAPE)
    finally:
        site.close()
    importer = server_factory("b", users={"exporter": ["import", "user"]})
    exporter.cli("target", "add", "b", "--url", importer.import_url, "--user", "exporter",
                 "--password-stdin", "--bwlimit", BWLIMIT,
                 stdin=password_of("exporter") + "\n")

    running = [sync_process(exporter), sync_process(exporter)]
    results = [(process, *process.communicate(timeout=120)) for process in running]

    busy = [r for r in results if "holds this target" in r[2]]
    worked = [r for r in results if "holds this target" not in r[2]]
    assert len(busy) == 1 and len(worked) == 1, results
    (waiter, waiter_out, waiter_err), (winner, winner_out, winner_err) = busy[0], worked[0]
    assert winner.returncode == 0, winner_out + winner_err
    assert f"sent {ENTITIES}, already present 0, failed 0" in winner_out
    # The loser names the holder (pid@host, the winner's pid), sends nothing, exits 0.
    assert waiter.returncode == 0, waiter_out + waiter_err
    assert f"target b: sent 0, already present 0, failed 0 (a sync by {winner.pid}@" \
        in waiter_err
    assert "sent 0, already present 0, failed 0" in waiter_out

    # The importer saw requests of the winner's run only, and each entity left once.
    import_lines = [line for line in importer.log().splitlines() if " /import" in line]
    assert import_lines
    assert {line.rsplit("trace=", 1)[1].strip() for line in import_lines} == \
        {trace_of(winner_err)}
    assert trace_of(waiter_err) not in importer.log()
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT state, attempts, count(*) FROM export_queue "
                                     "GROUP BY state, attempts")).all()
            locks = conn.execute(text("SELECT count(*) FROM sync_locks")).scalar()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [("done", 1, ENTITIES)]
    assert locks == 0                                   # the winner released its lock
    counts = importer.counts()
    assert counts["events"] == 20 and counts["files"] == 44 and counts["staged"] == 0
