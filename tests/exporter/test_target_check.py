"""`target check` reports capabilities or "version 1 only", and one actionable message per
failure: unreachable, TLS, 401, 403, not an importer; a 5xx to its version 1 probe after the
credentials were accepted is a warning, not a failure; the probe changes nothing on
MeteorPi's 2015 importer nor on a skyrelay importer. Against real servers on loopback."""

import json
import socket

import pytest
from sqlalchemy import func, select

from tests.live_importer import PASSWORD, config_for, serving
from tests.meteorpi_2015 import MeteorPi2015
from tests.misbehaving import Server, always, json_answer, self_signed_cert
from exporter.check import PROBE, check_target
from importer.state import Importer
from model.export.targets import Filter, Secret, Target
from model.store import schema


def target(url: str, ca_bundle=None, password: str = "pw-of-check") -> Target:
    return Target(1, "b", url + "/import", "exporter", Secret(password), "auto", Filter(),
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


def v1_importer_answering(answer):
    """Version 1 only (capabilities 404), answering `answer` to the probe."""
    def respond(request):
        if request.path.endswith("/capabilities"):
            return 404, {}, b"<h1>Not Found</h1>"
        return answer
    return respond


def test_the_2015_importer_passes_with_a_warning_and_keeps_nothing():
    """The 2015 importer cannot read the probe and answers 500 after accepting the
    credentials: ok, with a warning naming the answer. Its entity cache (which keeps None for
    a `cached_entity` that missed, and then answers 500 for that ID for ever) is untouched."""
    importer = MeteorPi2015("exporter", "pw-of-check")
    with Server(importer) as server:
        result = check_target(target(server.url), timeout_s=5)
    assert result.ok and "version 1 only" in result.message, result
    assert result.warning.startswith("credentials accepted, but the importer answered 500 "
                                     "to the probe")
    assert importer.cache == {} and importer.statuses == importer.events == {}
    assert [json.loads(r.body) for r in server.requests if r.method == "POST"] == [PROBE]
    assert "pw-of-check" not in result.message + result.warning


def test_the_2015_importer_with_a_wrong_password_fails():
    with Server(MeteorPi2015("exporter", "the-right-one")) as server:
        result = check_target(target(server.url, password="a-wrong-one"), timeout_s=5)
    assert not result.ok and result.warning is None
    assert "authentication failed (401)" in result.message


@pytest.mark.parametrize("status, ok", [(500, True), (501, True), (502, False), (503, False),
                                        (504, False), (429, False)])
def test_which_5xx_to_the_probe_are_a_warning(status, ok):
    """A 5xx of the importer's own code comes after its login; a gateway's (502, 504) or a
    busy importer's (503, 429) says nothing about the credentials."""
    answer = json_answer({"state": "failed", "message": "boom"}, status)
    with Server(v1_importer_answering(answer)) as server:
        result = check_target(target(server.url), timeout_s=5)
    assert result.ok is ok
    if ok:
        assert f"answered {status} to the probe" in result.warning and "boom" in \
            result.warning
    else:
        assert result.warning is None and "importer error" in result.message


def test_a_400_that_is_not_the_import_protocol_is_no_importer():
    answer = (400, {"Content-Type": "text/html"}, b"<html>bad request</html>")
    with Server(v1_importer_answering(answer)) as server:
        result = check_target(target(server.url), timeout_s=5)
    assert not result.ok and "not a skyrelay/MeteorPi importer" in result.message


def test_the_probe_changes_nothing_on_a_skyrelay_importer(sqlite_site, tmp_path):
    """A skyrelay importer speaking version 1 only refuses the probe (400, the JSON failed
    shape): the check is ok, and no entity, cache entry or trace event was added."""
    sqlite_site.users.add("exporter", PASSWORD, ["import"])
    config = config_for(tmp_path, f"sqlite:///{tmp_path}/importer.db", tmp_path / "blobs",
                        **{"importer.max_protocol": 1})

    def stored():
        with sqlite_site.database.reading() as conn:
            traces = conn.scalar(select(func.count()).select_from(schema.trace_events))
        return sqlite_site.archive.counts(), traces

    with serving(config, sqlite_site) as (url, app):
        before = stored()
        result = check_target(target(url, password=PASSWORD), timeout_s=5)
        after, cached = stored(), len(Importer.of(app).cache)
    assert result.ok and result.warning is None, result
    assert "version 1 only" in result.message
    assert after == before and cached == 0


def test_the_command_prints_the_warning_and_exits_0(tmp_path):
    from click.testing import CliRunner
    from skyrelay.cli import cli
    (tmp_path / "config.yaml").write_text("{}\n")
    config = ["--config", str(tmp_path / "config.yaml")]
    with Server(MeteorPi2015("exporter", "pw-2015")) as server:
        added = CliRunner().invoke(cli, [*config, "target", "add", "b", "--url",
                                         server.url + "/import", "--user", "exporter",
                                         "--password-stdin"], input="pw-2015\n")
        assert added.exit_code == 0, added.output
        checked = CliRunner().invoke(cli, [*config, "target", "check", "b"])
    assert checked.exit_code == 0, checked.output
    assert "target b: ok:" in checked.stdout and "version 1 only" in checked.stdout
    assert "target b: WARNING: credentials accepted, but the importer answered 500" in \
        checked.stderr
