"""Requests racing for the same entity or the same bytes (several exporters sharing a status,
an upload retried while the first is still running): no 500, one row, the right answer.
Run on PostgreSQL too, where transactions do not serialise the way SQLite's do."""

import threading

from tests.importer_fixtures import site_config, USERS, md5_of, password_of, scene
from importer.app import create_app

THREADS = 8
ROUNDS = 5


def _clients(site, tmp_path):
    config = site_config(tmp_path)
    for name, roles in USERS.items():
        site.users.add(name, password_of(name), roles)
    app = create_app(config, site)
    return [app.test_client() for _ in range(THREADS)]


def _race(clients, send) -> list:
    replies, barrier = [None] * len(clients), threading.Barrier(len(clients))

    def run(index):
        barrier.wait()
        replies[index] = send(clients[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return replies


def test_same_status_and_event_at_once(site, tmp_path):
    clients = _clients(site, tmp_path)
    for _ in range(ROUNDS):
        _round(site, clients)
    assert site.archive.counts() == {"statuses": ROUNDS, "events": ROUNDS, "files": 2 * ROUNDS,
                                     "blobs": 2 * ROUNDS, "staged": 0}


def _round(site, clients) -> None:
    s = scene(n_files=2)
    auth = ("exporter", password_of("exporter"))
    replies = _race(clients, lambda c: c.post("/import", json={"type": "status",
                                                                "status": s.status}, auth=auth))
    assert [(r.status_code, r.get_json()) for r in replies] == \
        [(200, {"state": "continue"})] * THREADS
    for file_id, data in s.data.items():
        replies = _race(clients, lambda c: c.post(
            f"/import/data/{file_id}/{md5_of(data)}", auth=auth,
            data=data, content_type="application/octet-stream"))
        assert {(r.status_code, r.get_json()["received"]) for r in replies} == {(200, True)}
    replies = _race(clients, lambda c: c.post("/import", json={"type": "event",
                                                                "event": s.event}, auth=auth))
    assert [(r.status_code, r.get_json()) for r in replies] == \
        [(200, {"state": "complete"})] * THREADS
