"""The exporter's HTTP transport against real (misbehaving) servers on loopback: every error
is translated once into the exception tree; trace ID, Basic auth and timeouts on every call;
TLS verified by default."""

import base64
import hashlib
import io
import re
import socket
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import pytest

from tests.misbehaving import Server, always, json_answer, self_signed_cert, slow
from exporter import errors
from exporter.transport import Transport

TRACE = "0123456789abcdef0123456789abcdef"


def transport(url: str, timeout_s: float = 5.0, ca_bundle=None) -> Transport:
    return Transport(url + "/import", "exporter", "s3cret-pw", timeout_s, TRACE, ca_bundle)


@pytest.mark.parametrize("answer, error, retryable", [
    (json_answer({"state": "failed", "message": "boom"}, 500), errors.ServerError, True),
    (json_answer({"state": "failed", "message": "busy"}, 503), errors.ServerError, True),
    (json_answer({"state": "failed", "message": "slow down"}, 429), errors.ServerError, True),
    (json_answer({"state": "failed", "message": "who?"}, 401), errors.AuthError, False),
    (json_answer({"state": "failed", "message": "no role"}, 403), errors.Forbidden, False),
    (json_answer({"state": "failed", "message": "event.md5: bad"}, 400), errors.Refused, False),
    (json_answer({"state": "failed", "message": "too big"}, 413), errors.Refused, False),
    ((404, {}, b"<html>not here</html>"), errors.NotFound, False),
    ((200, {"Content-Type": "text/html"}, b"<html>hello</html>"), errors.ProtocolError, False),
])
def test_status_codes_become_the_exception_tree(answer, error, retryable):
    with Server(always(answer)) as server, transport(server.url) as t:
        with pytest.raises(error) as raised:
            t.post_json({"type": "cached_entity", "cached_entity_id": "0" * 32})
    assert isinstance(raised.value, errors.RetryableError) is retryable
    assert isinstance(raised.value, errors.FinalError) is not retryable
    if answer[2].startswith(b"{"):
        assert json_message(answer) in str(raised.value)


def json_message(answer) -> str:
    import json
    return json.loads(answer[2])["message"]


def test_retry_after_is_kept():
    answer = json_answer({"state": "failed", "message": "later"}, 503, {"Retry-After": "7"})
    with Server(always(answer)) as server, transport(server.url) as t:
        with pytest.raises(errors.ServerError) as raised:
            t.post_json({})
    assert raised.value.retry_after_s == 7 and raised.value.status == 503


def test_connection_refused_is_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with transport(f"http://127.0.0.1:{port}") as t:
        with pytest.raises(errors.Unreachable) as raised:
            t.post_json({})
    assert "refused" in str(raised.value).lower()


def test_every_call_has_a_timeout():
    with Server(slow(2, json_answer({"state": "complete"}))) as server, \
            transport(server.url, timeout_s=0.3) as t:
        with pytest.raises(errors.TimedOut):
            t.post_json({})
        with pytest.raises(errors.TimedOut):
            t.upload("1" * 32, "2" * 32, io.BytesIO(b"x"), 1)
        with pytest.raises(errors.TimedOut):
            t.capabilities()


def test_trace_id_and_basic_auth_on_every_request():
    expected_auth = "Basic " + base64.b64encode(b"exporter:s3cret-pw").decode()
    with Server(always(json_answer({"state": "continue"}))) as server, \
            transport(server.url) as t:
        t.post_json({"type": "cached_entity", "cached_entity_id": "0" * 32})
        t.upload("1" * 32, "2" * 32, io.BytesIO(b"abc"), 3)
        assert t.requests == 2
    assert len(server.requests) == 2
    for request in server.requests:
        assert request.headers["X-Trace-Id"] == TRACE
        assert request.headers["Authorization"] == expected_auth


def test_upload_is_multipart_field_file_with_a_content_length():
    data = bytes(range(256)) * 40
    with Server(always(json_answer({"state": "continue", "received": True}))) as server, \
            transport(server.url) as t:
        answer = t.upload("1" * 32, hashlib.md5(data).hexdigest(), io.BytesIO(data), len(data))
        assert t.bytes_uploaded == len(data)
    assert answer == {"state": "continue", "received": True}
    request = server.requests[0]
    assert request.path == f"/import/data/{'1' * 32}/{hashlib.md5(data).hexdigest()}"
    assert "chunked" not in request.headers.get("Transfer-Encoding", "")
    assert int(request.headers["Content-Length"]) == len(request.body)
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode() + request.body)
    parts = list(message.iter_parts())
    assert len(parts) == 1
    assert parts[0].get_param("name", header="content-disposition") == "file"
    assert parts[0].get_filename() == "file"
    assert parts[0].get_payload(decode=True) == data


def test_capabilities_404_means_version_1_only():
    with Server(always((404, {}, b""))) as server, transport(server.url) as t:
        assert t.capabilities() is None
    with Server(always(json_answer({"protocol": [1, 2], "max_batch": 500}))) as server, \
            transport(server.url) as t:
        assert t.capabilities()["protocol"] == [1, 2]
    with Server(always(json_answer(["nonsense"]))) as server, transport(server.url) as t:
        with pytest.raises(errors.ProtocolError):
            t.capabilities()


def test_tls_is_verified_by_default_and_a_ca_bundle_makes_it_pass(tmp_path):
    pem = self_signed_cert(tmp_path)
    with Server(always(json_answer({"state": "continue-nocache"})), certfile=pem) as server:
        with transport(server.url) as t, pytest.raises(errors.TLSError) as raised:
            t.post_json({})
        assert "--ca-bundle" in str(raised.value)
        with transport(server.url, ca_bundle=str(tmp_path / "cert.pem")) as t:
            assert t.post_json({}) == {"state": "continue-nocache"}


def test_a_sibling_has_the_same_credentials_ca_and_limit_and_its_own_session(tmp_path):
    """A second sync lane's transport: same auth, trace ID, CA bundle and bandwidth bucket;
    its own session and counters."""
    pem = self_signed_cert(tmp_path)
    expected_auth = "Basic " + base64.b64encode(b"exporter:s3cret-pw").decode()
    with Server(always(json_answer({"state": "continue-nocache"})), certfile=pem) as server:
        with transport(server.url, ca_bundle=str(tmp_path / "cert.pem")) as t:
            t.bucket.rate = 1000
            with t.sibling() as twin:
                assert twin.post_json({}) == {"state": "continue-nocache"}
                assert twin.bucket is t.bucket and twin.session is not t.session
                assert (twin.requests, t.requests) == (1, 0)
    assert server.requests[0].headers["X-Trace-Id"] == TRACE
    assert server.requests[0].headers["Authorization"] == expected_auth


def test_no_silent_verify_false_anywhere():
    root = Path(__file__).parents[2]
    sources = [p for folder in ("exporter", "skyrelay", "model", "importer")
               for p in (root / folder).rglob("*.py")]
    offenders = [str(p) for p in sources
                 if re.search(r"verify\s*=\s*False", p.read_text())]
    assert offenders == []
