"""skyrelay exporting (version 1) to an importer that misbehaves as MeteorPi's 2015 one does
(`tests.meteorpi_2015`): every key its model reads unconditionally is sent, one entity that
answers 500 for ever fails alone while the others arrive, and only a streak of 5xx from
different entities backs the target off."""

import pytest

from tests.meteorpi_2015 import MeteorPi2015
from tests.misbehaving import Server, always, json_answer
from tests.site_kit import sync_settings
from exporter.retry import MAX_ENTITY_5XX
from exporter.sync import Syncer
from model.archive.sample import SampleWriter
from model.export.queue import ExportQueue
from model.export.targets import Targets
from model.store.database import now_ms

PASSWORD = "meteorpi-2015-password"
SETTINGS = sync_settings(timeout_s=5, backoff_base_s=30, backoff_max_s=300)


def fill(site, events: int):
    return SampleWriter(site.archive, seed=13).fill(cameras=1, events_per_camera=events,
                                                    files_per_event=1,
                                                    standalone_per_camera=0)


def add(site, url: str, protocol: str = "auto"):
    """`auto`: the 2015 importer has no capabilities (404), so the sync speaks version 1."""
    return Targets(site.database).add("b", url + "/import", "exporter", PASSWORD, protocol)


def state_of(site, target, kind: str, entity_id: str) -> dict:
    return ExportQueue(site.database).entry(target.target_id, kind, entity_id)


def file_bytes(site, file_id: str) -> bytes:
    stream, _ = site.archive.open_data(file_id)
    with stream:
        return stream.read()


def test_statuses_without_regions_reach_the_2015_importer(sqlite_site):
    """The sample statuses have no regions: the 2015 model reads `d['regions']` and answered
    500 to each, so nothing arrived. Sent with `"regions": []`, everything arrives."""
    generated = fill(sqlite_site, events=3)
    assert all(status.regions is None for status in generated.statuses)
    importer = MeteorPi2015("exporter", PASSWORD)
    with Server(importer) as server:
        add(sqlite_site, server.url)
        report = Syncer(sqlite_site, SETTINGS).run()
    assert report.ok, report.targets[0].line()
    assert report.total("sent") == 3 and report.total("failed") == 0
    assert set(importer.events) == {event.event_id for event in generated.events}
    assert set(importer.statuses) == {status.status_id for status in generated.statuses}
    assert all(status["regions"] == [] for status in importer.statuses.values())
    for record in generated.all_file_records():
        assert importer.data[record.file_id] == file_bytes(sqlite_site, record.file_id)


def test_one_entity_answering_500_for_ever_fails_alone_and_the_others_arrive(sqlite_site):
    """The 2015 importer's sticky cache miss: one event's entry is lost between its posts, so
    from its `cached_entity` on, every request naming it answers 500 (a full resend too).
    The sync goes on: 9 of 10 events arrive, the tenth fails with the reason and its own
    backoff, and the target is not backed off."""
    generated = fill(sqlite_site, events=10)
    bad = generated.events[3]
    importer = MeteorPi2015("exporter", PASSWORD, forget={bad.event_id})
    with Server(importer) as server:
        target = add(sqlite_site, server.url)
        before = now_ms()
        report = Syncer(sqlite_site, SETTINGS).run()
        line = report.targets[0]
        assert (line.sent, line.already_present, line.failed, line.deferred) == (9, 0, 1, 0)
        assert line.problem is None and not report.ok
        assert set(importer.events) == {e.event_id for e in generated.events} - {bad.event_id}
        assert importer.cache[bad.event_id] is None          # the sticky miss
        entry = state_of(sqlite_site, target, "event", bad.event_id)
        assert entry["state"] == "failed" and entry["attempts"] == 1
        assert "importer error 500" in entry["last_error"]
        assert "this entity's fault" in entry["last_error"]
        assert entry["next_attempt_ms"] >= before + 30_000   # its own backoff
        held = Targets(sqlite_site.database).get("b")
        assert held.failures == 0 and held.next_attempt_ms <= now_ms()
        others = [state_of(sqlite_site, target, "event", e.event_id)["state"]
                  for e in generated.events if e is not bad]
        assert others == ["done"] * 9


def test_an_importer_answering_500_to_everything_backs_the_target_off_after_the_bound(
        sqlite_site):
    generated = fill(sqlite_site, events=10)
    answer = json_answer({"state": "failed", "message": "internal error"}, 500)
    with Server(always(answer)) as server:
        target = add(sqlite_site, server.url, "v1")
        report = Syncer(sqlite_site, SETTINGS).run()
        line = report.targets[0]
        assert len(server.requests) == MAX_ENTITY_5XX          # one per entity tried
        assert (line.sent, line.failed, line.deferred) == (0, 0, 10)
        assert "500" in line.problem and "backing off 30 s" in line.problem
        assert Targets(sqlite_site.database).get("b").failures == 1
        entries = [state_of(sqlite_site, target, "event", e.event_id)
                   for e in generated.events]
        assert [e["state"] for e in entries] == ["pending"] * 10     # none failed
        assert [e["attempts"] for e in entries] == [1] * MAX_ENTITY_5XX + [0] * 7
        assert all("500" in e["last_error"] for e in entries[:MAX_ENTITY_5XX])
        again = Syncer(sqlite_site, SETTINGS).run()
        assert "backing off" in again.targets[0].problem
        assert len(server.requests) == MAX_ENTITY_5XX          # the next run waited


@pytest.mark.parametrize("before_the_fault", [0, 2])
def test_a_streak_open_when_the_queue_ends_is_the_targets_unless_something_got_through(
        sqlite_site, before_the_fault):
    """The last entities answer 500 and no later one can tell whose fault it was: if the
    importer answered an entity of this run before, they fail as their own; if not (nothing
    got through), the target backs off and they stay pending."""
    generated = fill(sqlite_site, events=before_the_fault + 2)
    bad = {e.event_id for e in generated.events[before_the_fault:]}
    importer = MeteorPi2015("exporter", PASSWORD, forget=bad)
    with Server(importer) as server:
        target = add(sqlite_site, server.url)
        report = Syncer(sqlite_site, SETTINGS).run()
    line = report.targets[0]
    states = {state_of(sqlite_site, target, "event", event_id)["state"] for event_id in bad}
    if before_the_fault:
        assert (line.sent, line.failed, line.deferred, line.problem) == (2, 2, 0, None)
        assert states == {"failed"}
        assert Targets(sqlite_site.database).get("b").failures == 0
    else:
        assert (line.sent, line.failed, line.deferred) == (0, 0, 2)
        assert "500" in line.problem and "backing off" in line.problem
        assert states == {"pending"}
        assert Targets(sqlite_site.database).get("b").failures == 1


def test_a_5xx_streak_ended_by_an_unreachable_importer_stays_pending(sqlite_site):
    """A 500 for one entity, then the importer is gone: the target backs off (unreachable),
    and the entity that got the 500 waits with the others instead of failing."""
    generated = fill(sqlite_site, events=3)
    bad = generated.events[1]
    importer = MeteorPi2015("exporter", PASSWORD, forget={bad.event_id})
    server = Server(importer)

    def then_gone(request):
        answer = importer(request)
        if answer[0] == 500:           # the importer dies right after the 500
            server.answer = lambda request: (_ for _ in ()).throw(ConnectionResetError())
        return answer

    server.answer = then_gone
    with server:
        target = add(sqlite_site, server.url)
        report = Syncer(sqlite_site, SETTINGS).run()
    line = report.targets[0]
    assert (line.sent, line.failed, line.deferred) == (1, 0, 2), line.line()
    assert line.problem and "backing off" in line.problem
    entry = state_of(sqlite_site, target, "event", bad.event_id)
    assert entry["state"] == "pending" and "importer error 500" not in entry["last_error"]
