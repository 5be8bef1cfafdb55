"""`/api/users`: camera_admin manages users over HTTP; passwords never come back out."""

import uuid

import pytest

from tests.importer.test_import_errors import assert_error
from tests.importer_fixtures import password_of


def new_name() -> str:
    return "u" + uuid.uuid4().hex[:10]


def names(http) -> dict:
    reply = http.request("GET", "/api/users", user="admin")
    assert reply.status == 200
    return {user["name"]: user["roles"] for user in reply.json()["users"]}


def test_admin_adds_lists_changes_and_removes_a_user(http):
    name = new_name()
    reply = http.request("POST", "/api/users", user="admin",
                         json={"name": name, "password": "a long secret", "roles": ["user"]})
    assert reply.status == 201 and reply.json() == {"name": name, "roles": ["user"]}
    assert names(http)[name] == ["user"]
    assert b"a long secret" not in http.request("GET", "/api/users", user="admin").body
    reply = http.request("PUT", f"/api/users/{name}", user="admin",
                         json={"roles": ["import", "user"]})
    assert reply.status == 200 and reply.json()["roles"] == ["import", "user"]
    assert http.request("DELETE", f"/api/users/{name}", user="admin").status == 200
    assert name not in names(http)


@pytest.mark.parametrize("body, status, words", [
    ({"name": "x y", "password": "long enough", "roles": ["user"]}, 400, "user name"),
    ({"name": "NAME", "password": "short", "roles": ["user"]}, 400, "at least 8"),
    ({"name": "NAME", "password": "long enough", "roles": ["root"]}, 400, "roles must be"),
    ({"name": "NAME", "password": "long enough", "roles": [{"a": 1}]}, 400, "roles:"),
    ({"name": "NAME", "password": 12345678, "roles": ["user"]}, 400, "password:"),
    ({"password": "long enough", "roles": ["user"]}, 400, "name:"),
    ([], 400, "expected a JSON object"),
    ({"name": "admin", "password": "long enough", "roles": ["user"]}, 409, "exists already"),
])
def test_bad_additions_are_refused_and_change_nothing(http, body, status, words):
    before = names(http)
    if isinstance(body, dict) and body.get("name") == "NAME":
        body = {**body, "name": new_name()}
    reply = http.request("POST", "/api/users", user="admin", json=body)
    assert_error(reply, status, words)
    assert names(http) == before


def test_unknown_user_is_404_on_change_and_removal(http):
    assert_error(http.request("PUT", "/api/users/nobody", user="admin", json={"roles": ["user"]}),
                 404, "no user")
    assert_error(http.request("DELETE", "/api/users/nobody", user="admin"), 404, "no user")


@pytest.mark.parametrize("user, status", [(None, 401), ("reader", 403), ("exporter", 403)])
def test_only_camera_admin_may_manage_users(http, user, status):
    before = names(http)
    assert_error(http.request("GET", "/api/users", user=user), status)
    body = {"name": new_name(), "password": password_of("x"), "roles": ["user"]}
    assert_error(http.request("POST", "/api/users", user=user, json=body), status)
    assert names(http) == before


def test_concurrent_additions_of_one_name_give_one_user_and_one_clean_refusal(site):
    """Both requests pass the "name free?" check; the database's key decides, and the loser
    gets UserExists, not a driver error."""
    import threading

    from model.ops.users import UserExists

    outcomes, start = [], threading.Barrier(2)

    def add():
        start.wait()
        try:
            site.users.add("twin", "long enough", ["user"])
            outcomes.append("added")
        except UserExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=add) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["added", "exists"]
    assert [user.name for user in site.users.list()] == ["twin"]
