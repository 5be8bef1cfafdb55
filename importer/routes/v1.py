"""Version 1 of the import protocol: `POST {base}` (the handshake) and
`POST {base}/data/<file_id>/<md5>` (file bytes).

The routes only parse, gather facts and store; what to answer is `handshake.decide`. A request
that breaks a rule is refused with an `EntityError` (400, `importer.errors`).
"""

import logging

from flask import Blueprint, g, jsonify

from importer import handshake, tracing
from importer.auth import require_role
from importer.errors import ApiError
from importer.handshake import STORE, Answer, Held
from importer.request_body import file_source, read_json, too_large
from importer.state import current
from model.archive.archive import MissingData, MissingStatus, Outcome
from model.protocol import codec
from model.protocol.entities import EntityError, Event, FileRecord, Status
from model.protocol.vocabulary import CACHED_ENTITY, CONTINUE, EVENT, FILE, STATUS, answer
from model.store.blobs import TooLarge
from model.store.database import now_ms

log = logging.getLogger("skyrelay.importer")

FORMS = {STATUS: Status, FILE: FileRecord, EVENT: Event}
STORE_ATTEMPTS = 3


def blueprint(url_path: str) -> Blueprint:
    bp = Blueprint("import_v1", __name__, url_prefix=url_path.rstrip("/") or None)
    bp.add_url_rule("", "handshake", handshake_route, methods=["POST"])
    bp.add_url_rule("/", "handshake_slash", handshake_route, methods=["POST"])
    bp.add_url_rule("/data/<file_id>/<md5>", "data", data_route, methods=["POST"])
    return bp


@require_role("import")
def handshake_route():
    importer = current()
    started = now_ms()
    tracing.request_trace_id()
    body = read_json(importer.settings["importer.max_body_bytes"])
    try:
        entity, cached = _entity_of(body, importer.cache, g.user.name)
    except EntityError as refused:     # not translated here: recorded, then answered 400
        tracing.record_refusal(importer.site.traces, body, str(refused), started)
        raise
    if entity is None:
        return jsonify(handshake.NOCACHE.to_json())
    held_before = importer.site.archive.held_hash(entity.kind, entity.id)
    answer = settle(importer, entity, cached)
    tracing.record_answer(importer.site.traces, entity, answer, held_before, started)
    return jsonify(answer.to_json())


def _entity_of(body, cache, user: str):
    """(entity, cached?) for one of the four request forms; (None, True) on a cache miss.
    A full entity is validated, then cached (replacing any earlier one under its ID)."""
    if not isinstance(body, dict):
        raise EntityError("body", "expected a JSON object with a 'type'")
    kind = body.get("type")
    if kind == CACHED_ENTITY:
        entity_id = _id(body.get("cached_entity_id"), "cached_entity_id")
        return cache.get(user, entity_id), True
    if not isinstance(kind, str) or kind not in FORMS:   # (a list or object is unhashable)
        raise EntityError("type", f"expected one of status, file, event, cached_entity, "
                                  f"got {codec.shown(kind)}")
    if body.get(kind) is None:
        raise EntityError(kind, f"is required for type {kind!r}")
    entity = FORMS[kind].from_json(body[kind], kind)
    cache.put(user, entity.id, entity)
    return entity, False


def _id(value, field: str) -> str:
    if value is None:
        raise EntityError(field, "is required")
    return codec.uuid_hex(value, field)


def settle(importer, entity, cached: bool) -> Answer:
    """Decide; when the decision is to store, store and decide again with the outcome.

    A store can lose a race (another request stored the same ID first, or staged bytes
    expired in between): then the facts are gathered afresh and the decision made again."""
    archive = importer.site.archive
    for _ in range(STORE_ATTEMPTS):
        held = what_is_held(importer, entity)
        answer = handshake.decide(entity, held, cached)
        if answer is not STORE:
            if answer.conflict:
                _log_conflict(entity, held)
            return answer
        try:
            result = _store(archive, entity)
        except (MissingStatus, MissingData) as exc:
            # (A store that lost a race on the database's keys was decided again by the
            # archive already: model.archive.races.)
            log.info("storing %s %s lost a race (%s); deciding again", entity.kind,
                     entity.id, type(exc).__name__)
            continue
        if result.outcome is not Outcome.CONFLICT:
            now_held = Held(held_hash=entity.content_hash, status_held=True)
            return handshake.decide(entity, now_held, cached)
    raise ApiError(503, "the archive changed while this entity was being stored; retry",
                   headers={"Retry-After": "1"})


def what_is_held(importer, entity) -> Held:
    """The facts `handshake.decide` needs, read from the archive.

    The reads are not one snapshot, so the order matters: whether the entity itself is held
    is read last. A concurrent request storing this very entity then shows up there at the
    latest, and `decide` answers `complete` before looking at the other facts (which that
    store may have changed, e.g. its file records now count as "taken")."""
    archive = importer.site.archive
    kind = entity.kind
    if isinstance(entity, Status):
        return Held(held_hash=archive.held_hash(kind, entity.id))
    records = entity.file_records
    missing_statuses = archive.missing_statuses(
        [entity.status_id] + [record.status_id for record in records])
    missing = frozenset(archive.missing_data(records))
    taken = (handshake.taken_file_ids(entity, importer.site.catalog.file_holders(
        [r.file_id for r in records])) if isinstance(entity, Event) else frozenset())
    return Held(held_hash=archive.held_hash(kind, entity.id),
                status_held=not missing_statuses,
                missing_status_id=missing_statuses[0] if missing_statuses else None,
                missing_data=missing, taken_file_ids=taken)


def _store(archive, entity):
    if isinstance(entity, Status):
        return archive.add_status(entity)
    if isinstance(entity, Event):
        return archive.import_event(entity)
    return archive.import_file(entity)


def _log_conflict(entity, held: Held) -> None:
    log.warning("conflict: %s %s is held with content hash %s; user %s sent content hash %s;"
                " the held version is kept", entity.kind, entity.id, held.held_hash,
                g.user.name, entity.content_hash)


@require_role("import")
def data_route(file_id: str, md5: str):
    """Stage the bytes under (file_id, md5) if their MD5 matches; `continue` either way."""
    file_id, md5 = _id(file_id, "file_id"), codec.md5_hex(md5, "md5")
    importer = current()
    limit, archive = importer.settings["importer.max_file_bytes"], importer.site.archive
    try:
        result = archive.stage_bytes(file_id, md5, file_source(limit), limit)
    except TooLarge:
        # Kept: the blob store knows only its limit in bytes; the client needs the setting
        # to name, in the same words as a raw body refused before any byte was read.
        raise too_large("file", "importer.max_file_bytes", limit) from None
    return jsonify(answer(CONTINUE, received=result.received, message=result.message))
