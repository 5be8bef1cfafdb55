"""Repeated syncs: `--every`, `--schedule` (croniter), and no overlap between processes."""

import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.exporter.test_sync_faults import REPO, skyrelay  # noqa: F401  (shared subprocess helper)
from tests.misbehaving import Server, json_answer, slow
from tests.site_kit import open_test_site
from exporter import scheduler
from model.archive.sample import SampleWriter


def test_every_runs_at_the_interval_until_stopped():
    stop, runs = threading.Event(), []
    start = time.time()
    made = scheduler.run_repeatedly(scheduler.every(0.1, start), lambda: runs.append(time.time()),
                                    stop, max_runs=3)
    assert made == 3 and runs[-1] - start == pytest.approx(0.2, abs=0.08)
    stop.set()
    assert scheduler.run_repeatedly(scheduler.every(0.1), lambda: runs.append(0), stop) == 0


def test_a_late_run_is_followed_at_once_not_by_a_pile_up():
    times = scheduler.every(1.0, start=time.time() - 10)
    first, second = next(times), next(times)
    assert second >= time.time() - 0.01 and second - first >= 9


def test_cron_times_follow_the_expression():
    start = 1_767_225_600.0   # 2026-01-01T00:00:00Z
    times = scheduler.cron_times("*/5 * * * *", start)
    assert [next(times) - start for _ in range(3)] == [300, 600, 900]
    with pytest.raises(scheduler.ScheduleError):
        scheduler.check_cron("every five minutes")


@pytest.fixture
def cli_site(tmp_path):
    (tmp_path / "config.yaml").write_text("exporter: {timeout_s: 5}\n")
    site = open_test_site(f"sqlite:///{tmp_path}/var/skyrelay.db", tmp_path / "var/blobs")
    SampleWriter(site.archive, seed=6).fill(cameras=1, events_per_camera=2, files_per_event=1,
                                            standalone_per_camera=0)
    site.close()
    return tmp_path


def start_sync(folder, *args) -> subprocess.Popen:
    import os
    return subprocess.Popen([sys.executable, "-m", "skyrelay", "--config",
                             str(folder / "config.yaml"), "sync", "--no-progress", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=folder, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_two_syncs_of_one_target_never_overlap(cli_site):
    with Server(slow(0.6, json_answer({"state": "complete"}))) as server:
        skyrelay(cli_site, "target", "add", "b", "--url", server.url + "/import", "--user",
                 "u", "--password-stdin", "--protocol", "v1", stdin="pw\n")
        first = start_sync(cli_site)
        deadline = time.monotonic() + 20
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        second = skyrelay(cli_site, "sync", "--no-progress")
        out, err = first.communicate(timeout=30)
    assert first.returncode == 0 and "already present 2" in out
    assert second.returncode == 0 and "holds this target" in second.stderr
    assert "already present 0" in second.stdout
    trace = out.strip().rsplit(" ", 1)[-1]
    assert {r.headers["X-Trace-Id"] for r in server.requests} == {trace}
    assert len(server.requests) == 2


def test_sync_every_loops_until_sigterm(cli_site):
    with Server(lambda r: json_answer({"state": "complete"})) as server:
        skyrelay(cli_site, "target", "add", "b", "--url", server.url + "/import", "--user",
                 "u", "--password-stdin", "--protocol", "v1", stdin="pw\n")
        loop = start_sync(cli_site, "--every", "1")
        time.sleep(2.5)
        loop.send_signal(signal.SIGTERM)
        out, err = loop.communicate(timeout=30)
    assert loop.returncode == 0, err
    summaries = [line for line in out.splitlines() if line.startswith("sync complete")]
    assert len(summaries) >= 2
    assert "already present 2" in summaries[0] and "already present 0" in summaries[1]
    assert len({line.rsplit(" ", 1)[-1] for line in summaries}) == len(summaries)  # new trace
    assert "sync loop stopped" in err
