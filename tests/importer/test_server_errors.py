"""What the HTTP server (gunicorn, under a real `skyrelay serve`) refuses before the app sees a
request is answered in the one JSON error shape too, with `Connection: close`, and logged on
the access log like any request. Sent over raw sockets: no client library would send these."""

import base64
import json
import re
import socket
import time

import pytest

from tests.server import Server, password_of

USERS = {"reader": ["user"], "exporter": ["import"]}
TIMEOUT_S = 10


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("server-errors"), users=USERS, workers=1) as server:
        yield server


def raw(server: Server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as it is; (status, headers, body) of the answer, read to its end.
    The header `closed` says whether the server closed the connection after the answer."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if length and len(body) >= int(length.group(1)):
                break
        sock.settimeout(2)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines)}
    headers["closed"] = str(closed)
    return int(status_line.split()[1]), headers, body


def request(path: str = "/api/events", method: str = "GET", headers: tuple = (),
            body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def basic(user: str) -> str:
    token = base64.b64encode(f"{user}:{password_of(user)}".encode()).decode()
    return f"Authorization: Basic {token}"


def assert_json_error(answer, status: int, words: str, says_close: bool = True) -> None:
    got, headers, body = answer
    assert got == status, (got, headers, body)
    assert headers["content-type"] == "application/json"
    assert headers["closed"] == "True"
    if says_close:
        assert headers["connection"] == "close"
    parsed = json.loads(body)
    assert set(parsed) == {"state", "message"} and parsed["state"] == "failed"
    assert words.lower() in parsed["message"].lower(), parsed


def access_lines(server: Server, status: int) -> list[str]:
    return [line for line in server.log().splitlines()
            if "skyrelay.access:" in line and f" {status} " in line]


def wait_for_access_line(server: Server, status: int, seen: int) -> list[str]:
    deadline = time.monotonic() + 5
    while len(lines := access_lines(server, status)) <= seen and time.monotonic() < deadline:
        time.sleep(0.05)
    return lines


@pytest.mark.parametrize("name, sent, status, words", [
    ("request line over 4 KiB", request("/api/events?camera_id=" + "a" * 5000), 414,
     "request line is too large"),
    ("10,000-character Authorization", request(headers=("Authorization: Basic "
                                                         + "A" * 10_000,)), 431, "header"),
    ("Range with 3,000 ranges", request("/api/files/" + "0" * 32 + "/data", headers=(
        basic("reader"), "Range: bytes=" + ",".join(f"{i}-{i}" for i in range(3000)))),
     431, "header"),
    ("more than 100 headers", request(headers=tuple(f"X-H{i}: {i}" for i in range(120))), 431,
     "header"),
    ("\\x7f in a header value", request(headers=(basic("reader"), "X-Note: a\x7fb")), 400,
     "invalid http header"),
    ("no request line", b"GARBAGE\r\n\r\n", 400, "invalid request line"),
    ("unknown HTTP version", b"GET /api/events HTTP/7.0\r\nHost: x\r\n\r\n", 400,
     "http version"),
])
def test_the_servers_own_refusals_are_json_and_logged(served, name, sent, status, words):
    seen = len(access_lines(served, status))
    assert_json_error(raw(served, sent), status, words)
    lines = wait_for_access_line(served, status, seen)
    assert len(lines) == seen + 1, (name, lines[-3:])


def test_a_request_the_app_answers_is_still_logged_once_with_its_path(served):
    seen = len(access_lines(served, 401))
    got, headers, _ = raw(served, request("/api/events?after=1"))
    assert got == 401 and headers["content-type"] == "application/json"
    lines = wait_for_access_line(served, 401, seen)
    assert len(lines) == seen + 1 and "GET /api/events 401" in lines[-1]


@pytest.mark.parametrize("path, content_type", [
    ("/import", "application/json"),
    ("/import/data/" + "0" * 32 + "/" + "0" * 32, "application/octet-stream"),
    ("/ingest", "application/x-tar")])
def test_a_malformed_chunked_body_is_a_400_in_the_error_shape(served, path, content_type):
    """gunicorn finds a bad chunk size only while the app reads the body: the app answers
    (its `Connection` header is gunicorn's to write), and gunicorn closes the connection."""
    sent = request(path, "POST", (basic("exporter"), f"Content-Type: {content_type}",
                                  "Transfer-Encoding: chunked"), b"zz\r\n{}\r\n0\r\n\r\n")
    assert_json_error(raw(served, sent), 400, "could not be read", says_close=False)
