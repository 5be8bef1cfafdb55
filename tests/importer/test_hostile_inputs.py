"""The general guard: every route of the app's URL map gets a small set of hostile inputs,
sent by a user who holds every role, on SQLite and on PostgreSQL.

Checked for every answer: no 5xx, and every answer that is not a success is the one JSON
error shape (`{"state": "failed", "message": …}`, Content-Type application/json). Requests
that carry a body change nothing stored: every table but `jobs` (a refused bundle keeps its
FAILED job, by design) holds as many rows after as before.

The routes come from `app.url_map.iter_rules()`, never from a list written here: a route
added later is walked too, and `test_a_careless_route_added_later_is_caught` shows that one
that lets bad input through fails the guard. The query parameters tried are a generic set
plus every name a route was seen to read (`RecordingArgs`). Raw-socket cases (what the HTTP
server itself refuses) are in test_server_errors.py; exact messages for the integer rules
in test_big_integers.py.
"""

import json
from dataclasses import dataclass, field

import pytest
from flask import Flask, Request, request
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select
from werkzeug.datastructures import ImmutableMultiDict

from importer.app import create_app
from model.ops.users import ROLES
from model.store import schema
from tests.importer_fixtures import SETTINGS, site_config
from tests.server import password_of
from tests.site_kit import open_test_site

ROOT = "root"                     # holds every role
HUGE = (2 ** 63, 2 ** 64, -(2 ** 63) - 1)
QUERY_NAMES = ("after", "before", "limit", "offset", "job_id", "page", "cursor", "camera_id",
               "event_type", "semantic_type")
QUERY_VALUES = tuple(str(n) for n in HUGE) + (
    str(2 ** 31), str(2 ** 63 - 1), "-1", "0", "abc", "1e3", "1.5", "\u00b2", "\u0663",
    "\x00", "9" * 5000, "x" * 300, " 1")
# Deep enough to overflow the stack, yet within the tests' body limit (64 KiB).
DEEP = b"[" * 60_000
BODIES = (
    DEEP, b'{"a":' * 10_000, b"[]", b"{}", b"null", b"1", b"-1", b'"text"', b"true",
    str(2 ** 64).encode(), b"9" * 5000, b"\xff\xfe\xfd", b'{"name": "\xff\xfe"}', b"",
    *(json.dumps(body).encode() for body in (
        {"type": ["event"]}, {"type": {"a": 1}}, {"type": None}, {"type": 1},
        {"type": "event", "event": []}, {"type": "status", "status": "x"},
        {"type": "cached_entity", "cached_entity_id": ["x"]},
        {"type": "cached_entity", "cached_entity_id": 2 ** 64},
        {"statuses": {"a": 1}, "files": None}, {"statuses": [2 ** 64], "events": [[]]},
        {name: 2 ** 64 for name in QUERY_NAMES + ("bwlimit", "job_id", "enabled")},
        {"roles": 2 ** 64}, {"roles": [2 ** 64]}, {"filter": [], "name": ["x"]},
    )))
PATH_JUNK = ("x" * 300, "%00", "..%2F", "../", "%ff", "a%0Ab", "\u00b2", str(2 ** 64), "-1",
             str(2 ** 31), "%7f", "a//b")
HEADERS = (
    {"X-Junk": "x" * 10_000},
    {"Range": "bytes=" + ",".join(f"{i}-{i}" for i in range(3000))},
    {"Range": f"bytes=0-{2 ** 64}"}, {"Range": f"bytes={2 ** 64}-"},
    {"Upload-Length": str(2 ** 64)}, {"Upload-Offset": str(2 ** 64)},
    {"Upload-Length": "-1"}, {"Upload-Offset": "\u00b2"},
    {"Upload-Metadata": "file_id " + "!" * 100}, {"Upload-Checksum": "sha1 " + "x" * 300},
    {"X-Trace-Id": "x" * 300}, {"X-Trace-Id": "a\x7fb"},
    {"Content-Type": "multipart/form-data; boundary=" + "x" * 300},
    {"Authorization": "Basic " + "A" * 10_000}, {"If-None-Match": "x" * 3000},
    {"Tus-Resumable": "9" * 300},
)
BODY_METHODS = {"POST", "PUT", "PATCH"}


# -- what the guard knows of a route ----------------------------------------------------------

class RecordingArgs(ImmutableMultiDict):
    """Query parameters that remember which names were asked for."""
    read: set[str] = set()

    def get(self, key, default=None, type=None):
        RecordingArgs.read.add(key)
        return super().get(key, default, type)

    def getlist(self, key, type=None):
        RecordingArgs.read.add(key)
        return super().getlist(key, type)

    def __getitem__(self, key):
        RecordingArgs.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        RecordingArgs.read.add(key)
        return super().__contains__(key)


class RecordingRequest(Request):
    parameter_storage_class = RecordingArgs


@dataclass(frozen=True)
class Route:
    rule: str
    method: str
    arguments: tuple[str, ...]

    def path(self, junk: str | None = None, which: str | None = None) -> str:
        """The rule with every argument a plausible ID, or `junk` in argument `which`."""
        path = self.rule
        for name in self.arguments:
            value = junk if name == which else "0" * 32
            path = path.replace(f"<{name}>", value).replace(f"<path:{name}>", value)
        return path

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"


def routes_of(app: Flask) -> list[Route]:
    """Every (rule, method) of the app; not the HEAD that werkzeug adds to a GET (the same
    view runs) nor the OPTIONS that Flask answers itself (no view runs)."""
    routes = []
    for rule in app.url_map.iter_rules():
        methods = set(rule.methods)
        if "GET" in methods:
            methods.discard("HEAD")
        if getattr(rule, "provide_automatic_options", False):
            methods.discard("OPTIONS")
        routes += [Route(rule.rule, method, tuple(sorted(rule.arguments)))
                   for method in sorted(methods)]
    return routes


@dataclass
class Guard:
    """The app under test, its client and storage; `send` checks every answer."""
    app: Flask
    client: object
    site: object
    problems: list[str] = field(default_factory=list)

    def send(self, route: Route, what: str, path: str | None = None, query=None,
             body: bytes | None = None, headers: dict | None = None):
        if body is None and route.method in BODY_METHODS:
            body = b"{}"
        all_headers = {"Tus-Resumable": "1.0.0", "Content-Type": "application/json",
                       **(headers or {})}
        response = self.client.open(path or route.path(), method=route.method,
                                    query_string=query, data=body, headers=all_headers,
                                    auth=None if "Authorization" in all_headers
                                    else (ROOT, password_of(ROOT)))
        problem = unsound(route, response)
        if problem:
            self.problems.append(f"{route} with {what}: {problem}")
        return response

    def reads(self, route: Route) -> set[str]:
        """The query parameter names `route` reads, seen on a plain request."""
        RecordingArgs.read = set()
        self.send(route, "a plain request")
        return set(RecordingArgs.read)


def unsound(route: Route, response) -> str | None:
    """What is wrong with an answer; None if nothing is."""
    status = response.status_code
    if status >= 500:
        return f"{status} {response.get_data()[:300]!r}"
    if status < 300 or status == 304 or route.method == "HEAD":
        return None
    if response.mimetype != "application/json":
        return f"{status} with Content-Type {response.content_type}"
    try:
        body = json.loads(response.get_data())
    except ValueError:
        return f"{status} with a body that is not JSON: {response.get_data()[:100]!r}"
    if not (isinstance(body, dict) and body.get("state") == "failed"
            and isinstance(body.get("message"), str) and body["message"]):
        return f"{status} not in the error shape: {body!r:.200}"
    return None


def stored_rows(site) -> dict[str, int]:
    """Rows of every table but `jobs` (see the module's docstring)."""
    with site.database.reading() as conn:
        return {name: conn.scalar(select(func.count()).select_from(table))
                for name, table in schema.metadata.tables.items() if name != "jobs"}


# -- fixtures ---------------------------------------------------------------------------------

def make_guard(site, tmp_path) -> Guard:
    app = create_app(site_config(tmp_path, SETTINGS), site)
    app.request_class = RecordingRequest
    site.users.add(ROOT, password_of(ROOT), list(ROLES))
    return Guard(app, app.test_client(), site)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def guard(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(f"guard-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/site.db"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.url(cluster.new_database(cluster.template))
    site = open_test_site(url, tmp_path / "blobs")
    made = make_guard(site, tmp_path)
    yield made
    site.close()


@pytest.fixture
def checked(guard):
    """The guard with an empty list of problems; the test asserts it is still empty."""
    guard.problems.clear()
    return guard


def walk_query(guard: Guard, routes: list[Route] | None = None) -> None:
    for route in routes_of(guard.app) if routes is None else routes:
        for name in sorted(set(QUERY_NAMES) | guard.reads(route)):
            for value in QUERY_VALUES:
                guard.send(route, f"?{name}={value[:20]!r}", query={name: value})
            guard.send(route, f"?{name}= invalid UTF-8", query=f"{name}=%ff%fe%80")


# -- the guard --------------------------------------------------------------------------------

def test_every_route_survives_hostile_query_parameters(checked):
    walk_query(checked)
    assert checked.problems == []


def test_every_route_survives_hostile_bodies_and_stores_nothing(checked):
    before = stored_rows(checked.site)
    for route in routes_of(checked.app):
        if route.method in BODY_METHODS:
            for body in BODIES:
                checked.send(route, f"body {body[:30]!r}", body=body)
    assert checked.problems == []
    assert stored_rows(checked.site) == before


def test_every_route_survives_junk_path_parameters(checked):
    before = stored_rows(checked.site)
    for route in routes_of(checked.app):
        for name in route.arguments:
            for junk in PATH_JUNK:
                checked.send(route, f"<{name}>={junk[:20]!r}", path=route.path(junk, name))
    assert checked.problems == []
    assert stored_rows(checked.site) == before


def test_every_route_survives_hostile_headers(checked):
    before = stored_rows(checked.site)
    for route in routes_of(checked.app):
        for headers in HEADERS:
            shown = {k: v[:20] for k, v in headers.items()}
            checked.send(route, f"headers {shown}", headers=headers)
    assert checked.problems == []
    assert stored_rows(checked.site) == before


def test_the_guard_walks_the_routes_of_every_blueprint(guard):
    rules = {route.rule for route in routes_of(guard.app)}
    for expected in ("/import", "/api/events", "/api/targets/<name>", "/get_state",
                     "/status/<trace_id>", "/import/batch", "/import/uploads/<upload_id>"):
        assert expected in rules
    assert guard.reads(Route("/api/events", "GET", ())) >= {"after", "before", "limit"}


def test_a_careless_route_added_later_is_caught(tmp_path):
    """A route that trusts its input (int() of a parameter the generic set does not even
    name; a body's key used unchecked) fails the guard: it walks the map, not a list."""
    site = open_test_site(f"sqlite:///{tmp_path}/site.db", tmp_path / "blobs")
    try:
        careless = make_guard(site, tmp_path)

        @careless.app.get("/careless")
        def careless_route():
            return {"doubled": 2 * int(request.args.get("how_many", "1"))}

        @careless.app.post("/careless")
        def careless_post():
            return {"kind": {"a": 1}.get(request.get_json()["type"])}

        added = [route for route in routes_of(careless.app) if route.rule == "/careless"]
        assert {route.method for route in added} == {"GET", "POST"}   # found in the map
        walk_query(careless, added)
        for body in BODIES:
            careless.send(Route("/careless", "POST", ()), f"body {body[:30]!r}", body=body)
    finally:
        site.close()
    assert any(p.startswith("GET /careless with ?how_many=") for p in careless.problems)
    assert any(p.startswith("POST /careless with body") for p in careless.problems)


# -- a property test over the routes ----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(("type", "name", "roles", "filter", "bwlimit", "url",
                                       "statuses", "events", "files", "enabled", "after")),
                      children, max_size=4),
    max_leaves=12)
query_values = st.one_of(st.integers(min_value=-(2 ** 70), max_value=2 ** 70).map(str),
                         st.text(max_size=30))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_route_with_any_parameters_and_body(checked, data):
    route = data.draw(st.sampled_from(routes_of(checked.app)), label="route")
    query = data.draw(st.dictionaries(st.sampled_from(QUERY_NAMES), query_values,
                                      max_size=3), label="query")
    path = route.path(*(data.draw(st.tuples(st.text(
        alphabet=st.characters(exclude_characters="/?#%"), min_size=1, max_size=40),
        st.sampled_from(route.arguments)), label="path argument")
        if route.arguments else ()))
    body = None
    if route.method in BODY_METHODS:
        body = json.dumps(data.draw(json_values, label="body")).encode()
    checked.send(route, f"query {query}, body {body!r:.100}", path=path, query=query,
                 body=body)
    assert checked.problems == []

