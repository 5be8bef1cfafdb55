"""A small importer that misbehaves as MeteorPi's 2015 importer does (its `importer_api` and
`meteorpi_model`), for `tests.misbehaving.Server`: `Server(MeteorPi2015(...))`.

What it copies, because skyrelay as an exporter must cope with it:
- HTTP Basic is checked first: a wrong user or password is 401, so any other answer means the
  credentials were accepted;
- two routes only, `POST {base}` and `POST {base}/data/<file_id>/<md5>`: anything else is
  404 (no capabilities: version 1 only);
- a body is read as its model's `from_dict` reads it: `d['type']`, `d[type][type + '_id']`,
  and for a status `orientation`, `location`, `regions`; for an event `files`, `meta`; for a
  file record `meta` and `int(file_size)`; for a meta item `key`, `type` without asking. A
  missing key (or an unknown `type`) is an exception, answered 500;
- its entity cache keeps None for an ID that missed, and then fails to clear itself: from the
  first miss on, every request naming that ID, a full resend included, answers 500. `forget`
  names IDs whose cache entry is lost once right after it was cached (as a restart or its
  LRU eviction would lose it), so their next `cached_entity` misses.

It keeps what it stored in plain dicts (`statuses`, `events`, `files`, `data`) for tests to
look at; `cache` is its entity cache.
"""

import base64
import hashlib
import json
import uuid

from tests.misbehaving import Answer, Request, json_answer


class _Crash(Exception):
    """What the Flask app would raise: the request ends in a 500."""


def _uuid(value) -> str:
    try:
        return uuid.UUID(value).hex
    except (TypeError, ValueError, AttributeError) as exc:
        raise _Crash(f"ValueError: badly formed UUID {value!r}") from exc


def _key(d, key: str):
    if not isinstance(d, dict) or key not in d:
        raise _Crash(f"KeyError: {key!r}")
    return d[key]


def read_meta(d) -> dict:
    _key(d, "key")
    if _key(d, "type") not in ("date", "string", "number"):
        raise _Crash("ValueError: Unknown meta value type")
    return d


def read_file(d) -> dict:
    try:
        int(d.get("file_size"))
    except (TypeError, ValueError) as exc:
        raise _Crash(f"TypeError: int() of {d.get('file_size')!r}") from exc
    [read_meta(m) for m in _key(d, "meta")]
    return d


def read_event(d) -> dict:
    [read_file(f) for f in _key(d, "files")]
    [read_meta(m) for m in _key(d, "meta")]
    return d


def read_status(d) -> dict:
    for key in ("orientation", "location", "regions"):
        _key(d, key)
    return d


READERS = {"status": read_status, "file": read_file, "event": read_event}


class MeteorPi2015:
    def __init__(self, user: str, password: str, base: str = "/import", forget=()):
        self.credentials = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.base = base
        self.forget = set(forget)
        self.cache: dict[str, dict | None] = {}
        self.statuses: dict[str, dict] = {}
        self.events: dict[str, dict] = {}
        self.files: dict[str, dict] = {}
        self.data: dict[str, bytes] = {}

    def __call__(self, request: Request) -> Answer:
        route = request.path.split("?")[0]
        on_import = route == self.base or route.startswith(self.base + "/data/")
        if request.method != "POST" or not on_import:
            return 404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>"
        if request.headers.get("Authorization") != self.credentials:
            return 401, {"WWW-Authenticate": 'Basic realm="Login Required"'}, \
                b"Could not verify your access level for that URL."
        try:
            if route == self.base:
                return self._entity(request.body)
            return self._file_data(route, request)
        except _Crash as crash:
            return 500, {"Content-Type": "text/html"}, \
                f"<h1>Internal Server Error</h1><!-- {crash} -->".encode()

    # -- POST {base} -----------------------------------------------------------------------

    def _entity(self, body: bytes) -> Answer:
        try:
            d = json.loads(body)
        except ValueError as exc:
            raise _Crash("yaml: not readable") from exc
        kind = _key(d, "type")
        if kind == "cached_entity":
            entity_id = _uuid(_key(d, "cached_entity_id"))
        else:
            entity_id = _uuid(_key(_key(d, kind), f"{kind}_id"))
        entity = self._cached(entity_id, kind, d)
        if entity is None:          # ImportRequest.entity_cache.clear() does not exist
            raise _Crash("AttributeError: 'function' object has no attribute 'clear'")
        if kind == "cached_entity":
            kind = entity["_kind"]
        return json_answer(getattr(self, f"_receive_{kind}")(entity))

    def _cached(self, entity_id: str, kind: str, d: dict) -> dict | None:
        """`_get_entity`: an lru_cache over the ID, which keeps None as any other value."""
        if entity_id not in self.cache:
            reader = READERS.get(kind)
            self.cache[entity_id] = None if reader is None else \
                {**reader(_key(d, kind)), "_kind": kind}
            if entity_id in self.forget and self.cache[entity_id] is not None:
                self.forget.discard(entity_id)
                return {**self.cache.pop(entity_id)}
        return self.cache[entity_id]

    def _receive_status(self, status: dict) -> dict:
        self.statuses.setdefault(_uuid(status["status_id"]), status)
        return {"state": "continue"}

    def _receive_event(self, event: dict) -> dict:
        event_id = _uuid(event["event_id"])
        if event_id not in self.events:
            if _uuid(event["status_id"]) not in self.statuses:
                return {"state": "need_status", "status_id": _uuid(event["status_id"])}
            for record in event["files"]:
                if _uuid(record["file_id"]) not in self.data:
                    return {"state": "need_file_data", "file_id": _uuid(record["file_id"])}
            self.events[event_id] = event
        return {"state": "complete"}

    def _receive_file(self, record: dict) -> dict:
        file_id = _uuid(record["file_id"])
        if file_id not in self.files:
            if _uuid(record["status_id"]) not in self.statuses:
                return {"state": "need_status", "status_id": _uuid(record["status_id"])}
            if file_id not in self.data:
                return {"state": "need_file_data", "file_id": file_id}
            self.files[file_id] = record
        return {"state": "complete"}

    # -- POST {base}/data/<file_id>/<md5> ----------------------------------------------------

    def _file_data(self, route: str, request: Request) -> Answer:
        file_id, md5 = route[len(self.base + "/data/"):].split("/", 1)
        file_id = _uuid(file_id)
        data = _multipart_file(request)
        if data is None:                  # request.files['file']: werkzeug's 400
            return 400, {"Content-Type": "text/html"}, b"<h1>Bad Request</h1>"
        if file_id not in self.data and hashlib.md5(data).hexdigest() == md5:
            self.data[file_id] = data
        return json_answer({"state": "continue"})


def _multipart_file(request: Request) -> bytes | None:
    """The bytes of the part named `file` of a multipart/form-data body, or None."""
    content_type = request.headers.get("Content-Type", "")
    if "boundary=" not in content_type:
        return None
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    for part in request.body.split(b"--" + boundary)[1:]:
        head, _, data = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return data[:-2] if data.endswith(b"\r\n") else data
    return None
