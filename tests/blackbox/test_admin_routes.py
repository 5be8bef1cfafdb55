"""docs/wire.md "Roles": `/api/targets`, `/api/users` need `camera_admin`; passwords (and
export target passwords) are never returned by any API or listing."""

import pytest

from tests.blackbox.helpers import assert_error


@pytest.mark.parametrize("path", ["/api/targets", "/api/users"])
def test_admin_routes_need_camera_admin(site, path):
    response = site.get(path, user=None)
    assert_error(response, 401)
    assert_error(site.get(path, user="reader"), 403)
    assert_error(site.get(path, user="exporter"), 403)
    answer = site.get(path, user="admin")
    assert answer.status_code == 200, (answer.status_code, answer.text)
    assert answer.headers["Content-Type"].startswith("application/json")


def test_user_listing_holds_no_password(site):
    answer = site.get("/api/users", user="admin")
    assert answer.status_code == 200, (answer.status_code, answer.text)
    text = answer.text
    for name in ("exporter", "reader", "admin"):
        assert name in text
        assert f"{name}-secret-password" not in text
