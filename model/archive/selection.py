"""Choose the part of the archive a bundle carries, by a filter like an export target's.

The window is half-open (`after` ≤ time < `before`), so that consecutive bundles of a
schedule neither overlap nor leave a gap. Standalone file records have no event type: a filter
on event types leaves them out. Every status an included entity refers to is included, so a
bundle is complete on its own.
"""

import json
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, true

from model.protocol.entities import Event, FileRecord, Status
from model.store import schema
from model.store.database import Database


@dataclass(frozen=True)
class Selection:
    """A filter: empty tuples and None mean "no restriction"."""
    cameras: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    after: int | None = None
    before: int | None = None


def _window(column, selection: Selection) -> list:
    where = []
    if selection.after is not None:
        where.append(column >= selection.after)
    if selection.before is not None:
        where.append(column < selection.before)
    return where


def select_entities(database: Database, selection: Selection
                    ) -> tuple[list[Status], list[FileRecord], list[Event]]:
    """(statuses, standalone file records, events), each in a stable order."""
    e, f, s = schema.events.c, schema.files.c, schema.statuses.c
    event_where = _window(e.event_time, selection)
    file_where = _window(f.file_time, selection) + [f.event_id.is_(None)]
    if selection.cameras:
        event_where.append(e.camera_id.in_(selection.cameras))
        file_where.append(f.camera_id.in_(selection.cameras))
    if selection.event_types:
        event_where.append(e.event_type.in_(selection.event_types))
    with database.reading() as conn:
        events = [Event.from_json(json.loads(body)) for body in conn.scalars(
            select(e.body).where(*event_where).order_by(e.event_time, e.event_id))]
        files = [] if selection.event_types else [
            FileRecord.from_json(json.loads(body)) for body in conn.scalars(
                select(f.body).where(*file_where).order_by(f.file_time, f.file_id))]
        wanted = {x.status_id for x in events} | {x.status_id for x in files}
        statuses = [Status.from_json(json.loads(body)) for body in conn.scalars(
            select(s.body).where(or_(s.status_id.in_(wanted), *_status_filter(selection)))
            .order_by(s.valid_from, s.status_id))]
    return statuses, files, events


def _status_filter(selection: Selection) -> list:
    """Statuses that match the filter themselves (a camera's configuration in the window),
    besides those referred to; with an event-type filter only the referred ones."""
    if selection.event_types:
        return []
    s = schema.statuses.c
    where = []
    if selection.cameras:
        where.append(s.camera_id.in_(selection.cameras))
    if selection.before is not None:
        where.append(s.valid_from < selection.before)
    if selection.after is not None:
        where.append(or_(s.valid_to.is_(None), s.valid_to > selection.after))
    return [and_(true(), *where)]
