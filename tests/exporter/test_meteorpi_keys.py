"""Every key the 2015 MeteorPi model reads unconditionally is in every version 1 body: the
codec writes most of them always, `exporter.meteorpi_keys` adds the others with their
neutral value; and a skyrelay importer reads `"regions": []` as no regions (same hash)."""

from tests.live_importer import PASSWORD, config_for, serving
from tests.meteorpi import BODIES
from tests.site_kit import open_test_site, sync_settings
from exporter.meteorpi_keys import NEUTRAL, READ_UNCONDITIONALLY, with_neutral_values
from exporter.sync import Syncer
from model.archive.sample import SampleWriter
from model.export.targets import Targets
from model.protocol.entities import Event, Status
from model.protocol.stored_json import StoredJson
from model.protocol.vocabulary import EVENT, FILE, STATUS

STATUS_BODY = {"status_id": "0" * 32, "camera_id": "c1", "valid_from": 0,
               "location": {"lat": 0, "long": 0}, "orientation": {"alt": 0, "az": 0}}


def missing(kind: str, entity: dict) -> list[str]:
    """The keys the 2015 model would miss in `entity` (nested records and meta included)."""
    gone = [f"{kind}.{key}" for key in READ_UNCONDITIONALLY[kind] if key not in entity]
    for record in entity.get("files", []) if kind == EVENT else []:
        gone += missing(FILE, record)
    for meta in entity.get("meta", []) if kind in (EVENT, FILE) else []:
        gone += [f"meta.{key}" for key in READ_UNCONDITIONALLY["meta item"] if key not in meta]
    return gone


def test_a_status_without_regions_gets_the_neutral_value():
    body = {"type": STATUS, STATUS: Status.from_json(STATUS_BODY).to_json()}
    assert "regions" not in body[STATUS]
    sent = with_neutral_values(body)
    assert sent[STATUS]["regions"] == [] and missing(STATUS, sent[STATUS]) == []
    assert "regions" not in body[STATUS]                    # the caller's body is unchanged


def test_what_is_there_is_sent_as_it_is():
    held = {"type": STATUS, STATUS: BODIES["status"]["status"]}
    assert with_neutral_values(held) is held                # its regions are kept
    assert with_neutral_values({"type": "cached_entity", "cached_entity_id": "0" * 32}) == \
        {"type": "cached_entity", "cached_entity_id": "0" * 32}
    assert with_neutral_values({"type": EVENT, EVENT: None}) == {"type": EVENT, EVENT: None}


def test_stored_events_and_files_carry_every_key_already(sqlite_site):
    """Only what the codec can leave out gets a neutral value: events and file records, sent
    as their stored text, already hold every key the 2015 model reads."""
    assert set(NEUTRAL) == {STATUS}
    generated = SampleWriter(sqlite_site.archive, seed=2).fill(
        cameras=1, events_per_camera=2, files_per_event=2, standalone_per_camera=1)
    bare = Event.from_json({"event_id": "2" * 32, "camera_id": "c1", "status_id": "0" * 32,
                            "event_time": 5, "event_type": "x:y", "files": [], "meta": []})
    for entity in [*generated.events, *generated.files, bare]:
        stored = StoredJson(entity.canonical_text)          # as the queue reads it
        assert missing(entity.kind, stored) == []
        body = {"type": entity.kind, entity.kind: stored}
        assert with_neutral_values(body) is body            # stored text goes out as it is


def test_empty_regions_and_no_regions_are_the_same_status():
    """A version 1 exporter now sends `"regions": []` where the status has none; the
    importer must hold it as the same status, or a later copy without the key would be a
    conflict."""
    absent = Status.from_json(STATUS_BODY)
    empty = Status.from_json(dict(STATUS_BODY, regions=[]))
    assert empty == absent and empty.regions is None
    assert empty.content_hash == absent.content_hash
    assert "regions" not in empty.to_json()
    with_one = Status.from_json(dict(STATUS_BODY, regions=[[{"x": 0, "y": 0}]]))
    assert with_one.content_hash != absent.content_hash


def test_a_skyrelay_importer_holds_a_status_sent_with_empty_regions_as_the_same(
        sqlite_site, tmp_path):
    """Version 1 from A to a skyrelay importer B: B receives `"regions": []` for statuses that
    have none, and holds them with A's content hash, so a later version 2 copy is no conflict."""
    generated = SampleWriter(sqlite_site.archive, seed=8).fill(
        cameras=1, events_per_camera=2, files_per_event=1, standalone_per_camera=0)
    site_b = open_test_site(f"sqlite:///{tmp_path}/b.db", tmp_path / "b-blobs")
    try:
        site_b.users.add("exporter", PASSWORD, ["import"])
        with serving(config_for(tmp_path, f"sqlite:///{tmp_path}/b.db", tmp_path / "b-blobs"),
                     site_b) as (url, _):
            Targets(sqlite_site.database).add("b", url + "/import", "exporter", PASSWORD, "v1")
            report = Syncer(sqlite_site, sync_settings(timeout_s=10)).run()
        assert report.ok and report.total("sent") == 2
        for status in generated.statuses:
            assert status.regions is None
            assert site_b.archive.held_hash(STATUS, status.status_id) == \
                sqlite_site.archive.held_hash(STATUS, status.status_id)
        for event in generated.events:
            assert site_b.archive.held_hash(EVENT, event.event_id) == \
                sqlite_site.archive.held_hash(EVENT, event.event_id)
    finally:
        site_b.close()
