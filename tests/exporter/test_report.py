"""A sync's counts agree everywhere: an entity not tried (its target stopped) is never counted
as failed, in the target's line, in the summary, nor in the run's trace event."""

import json

from click.testing import CliRunner
from sqlalchemy import select

from tests.misbehaving import Server, always, json_answer
from tests.site_kit import open_test_site
from exporter.report import SyncReport, TargetReport
from model.archive.sample import SampleWriter
from model.store import schema
from skyrelay.cli import cli


def test_not_tried_is_never_counted_as_failed():
    report = SyncReport("t" * 32, targets=[TargetReport("b", sent=2, deferred=33),
                                           TargetReport("c", failed=1, deferred=4)])
    summary = report.finish().summary()
    assert "failed 1, not tried 37," in summary and "sent 2" in summary
    assert report.targets[0].line().startswith("target b: sent 2, already present 0, "
                                               "failed 0, not tried 33")


def test_nothing_not_tried_is_not_mentioned():
    report = SyncReport("t" * 32, targets=[TargetReport("b", sent=3, failed=2)])
    summary = report.finish().summary()
    assert "failed 2, 0 B" in summary and "not tried" not in summary


def test_the_sync_command_says_not_tried_where_the_target_stopped(tmp_path):
    """The issue's case: a target that backs off at once; the summary said `failed 33`
    while the target's line said `failed 0, not tried 33`."""
    (tmp_path / "config.yaml").write_text("exporter: {timeout_s: 5, backoff_base_s: 30}\n")
    site = open_test_site(f"sqlite:///{tmp_path}/var/skyrelay.db", tmp_path / "var/blobs")
    SampleWriter(site.archive, seed=6).fill(cameras=1, events_per_camera=5, files_per_event=0,
                                            standalone_per_camera=0)
    site.close()
    config = ["--config", str(tmp_path / "config.yaml")]
    busy = json_answer({"state": "failed", "message": "busy"}, 503)
    with Server(always(busy)) as server:
        added = CliRunner().invoke(cli, [*config, "target", "add", "b", "--url",
                                         server.url + "/import", "--user", "u",
                                         "--protocol", "v1", "--password-stdin"],
                                   input="a-password\n")
        assert added.exit_code == 0, added.output
        synced = CliRunner().invoke(cli, [*config, "sync", "--no-progress"])
    assert synced.exit_code == 1
    assert "target b: sent 0, already present 0, failed 0, not tried 5" in synced.stderr
    assert "sync INCOMPLETE: sent 0, already present 0, failed 0, not tried 5," in \
        synced.stdout
    site = open_test_site(f"sqlite:///{tmp_path}/var/skyrelay.db", tmp_path / "var/blobs")
    try:
        with site.database.reading() as conn:
            metas = [json.loads(row.meta) if isinstance(row.meta, str) else row.meta
                     for row in conn.execute(select(schema.trace_events.c.meta).where(
                         schema.trace_events.c.operation == "sync",
                         schema.trace_events.c.trace_status == "FINISHED"))]
    finally:
        site.close()
    assert [(m["failed"], m["not_tried"]) for m in metas] == [(0, 5)]
