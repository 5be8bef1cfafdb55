"""`target check` reports capabilities or "version 1 only", and one actionable message per
failure: unreachable, TLS, 401, 403, not an importer. Against real servers on loopback."""

import socket

import pytest

from tests.misbehaving import Server, always, json_answer, self_signed_cert
from exporter.check import check_target
from model.export.targets import Filter, Secret, Target


def target(url: str, ca_bundle=None) -> Target:
    return Target(1, "b", url + "/import", "exporter", Secret("pw-of-check"), "auto", Filter(),
                  ca_bundle, True, 0, 0, False, None)


def v1_importer(request):
    """Version 1 only: no capabilities, a cache miss for the probe."""
    if request.path.endswith("/capabilities"):
        return json_answer({"state": "failed", "message": "not found"}, 404)
    return json_answer({"state": "continue-nocache"})


@pytest.mark.parametrize("answer, ok, words", [
    (v1_importer, True, ["version 1 only"]),
    (always(json_answer({"protocol": [1, 2], "max_batch": 500})), True, ["versions 1, 2"]),
    (always(json_answer({"state": "failed", "message": "x"}, 401)), False,
     ["authentication failed (401)", "--password-stdin"]),
    (always(json_answer({"state": "failed", "message": "x"}, 403)), False,
     ["forbidden (403)", "role 'import'"]),
    (always((404, {}, b"<html>nothing here</html>")), False,
     ["not a skyrelay/MeteorPi importer", "/import"]),
    (always((200, {"Content-Type": "text/html"}, b"<html>a web site</html>")), False,
     ["not a skyrelay/MeteorPi importer"]),
    (always(json_answer({"state": "failed", "message": "boom"}, 500)), False,
     ["importer error", "boom"]),
])
def test_check_reports_what_the_remote_is(answer, ok, words):
    with Server(answer) as server:
        result = check_target(target(server.url), timeout_s=5)
    assert result.ok is ok
    for word in words:
        assert word in result.message, result.message
    assert "pw-of-check" not in result.message
    assert all(r.headers.get("X-Trace-Id") for r in server.requests)


def test_check_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = check_target(target(f"http://127.0.0.1:{port}"), timeout_s=5)
    assert not result.ok and result.message.startswith("unreachable")
    assert "Is the importer running" in result.message


def test_check_tls_untrusted_then_trusted_with_a_ca_bundle(tmp_path):
    pem = self_signed_cert(tmp_path)
    with Server(v1_importer, certfile=pem) as server:
        untrusted = check_target(target(server.url), timeout_s=5)
        trusted = check_target(target(server.url, str(tmp_path / "cert.pem")), timeout_s=5)
    assert not untrusted.ok and untrusted.message.startswith("TLS failed")
    assert "--ca-bundle" in untrusted.message
    assert trusted.ok and "version 1 only" in trusted.message
