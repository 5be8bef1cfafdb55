"""A file range as a request body (`exporter.sendfile`): the exact bytes, with the right
Content-Length, through the bandwidth limit, over plain HTTP (sendfile(2)), TLS and a session
without the adapter (read and sent like a file); a file shorter than its range fails."""

import os

import pytest
import requests

from tests.misbehaving import Server, always, json_answer, self_signed_cert
from exporter import errors
from exporter.sendfile import PIECE, FileSpan, SpanBody
from exporter.transport import Transport

OK = always(json_answer({}))


class SentByTheKernel(FileSpan):
    """A span that must not be read in this process."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the span was read instead of sent with sendfile")


@pytest.fixture
def data_file(tmp_path):
    data = os.urandom(3 * PIECE + 12345)
    path = tmp_path / "blob"
    path.write_bytes(data)
    return path, data


def _transport(url: str, ca_bundle=None) -> Transport:
    return Transport(url, "exporter", "s3cret-pw", 10.0, "0" * 32, ca_bundle)


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_the_span_arrives_exact_and_is_drawn_through_the_limit_in_pieces(
        tmp_path, data_file, tls):
    path, data = data_file
    certfile = self_signed_cert(tmp_path) if tls else None
    offset, length = 1000, 2 * PIECE + 777
    drawn = []
    with Server(OK, certfile=certfile) as server, \
            _transport(server.url, tmp_path / "cert.pem" if tls else None) as transport, \
            open(path, "rb") as stream:
        span = SentByTheKernel(stream, offset, length, drawn.append)
        response = transport.send("PATCH", server.url + "/up", data=SpanBody(span))
    assert response.status_code == 200
    request = server.requests[0]
    assert request.body == data[offset:offset + length]
    assert int(request.headers["Content-Length"]) == length
    assert "Transfer-Encoding" not in request.headers
    assert sum(drawn) == length and max(drawn) <= PIECE


def test_a_session_without_the_adapter_reads_the_span_like_a_file(data_file):
    path, data = data_file
    drawn = []
    with Server(OK) as server, requests.Session() as session, open(path, "rb") as stream:
        span = FileSpan(stream, 5, len(data) - 5, drawn.append)
        assert session.patch(server.url + "/up", data=SpanBody(span), timeout=10).ok
    assert server.requests[0].body == data[5:]
    assert sum(drawn) == len(data) - 5


@pytest.mark.parametrize("adapter", [True, False], ids=["sendfile", "read"])
def test_a_file_shorter_than_its_span_is_a_final_error(data_file, adapter):
    path, data = data_file
    with Server(OK) as server, open(path, "rb") as stream:
        span = FileSpan(stream, 0, len(data) + 1, lambda n: None)
        if adapter:
            with _transport(server.url) as transport, \
                    pytest.raises(errors.FinalError, match="shorter than its record says"):
                transport.send("PATCH", server.url + "/up", data=SpanBody(span))
        else:
            with requests.Session() as session, \
                    pytest.raises(errors.FinalError, match="shorter than its record says"):
                session.patch(server.url + "/up", data=SpanBody(span), timeout=10)


def test_under_a_bandwidth_limit_a_transport_sends_quarter_second_pieces(data_file):
    path, data = data_file
    with Server(OK) as server, open(path, "rb") as stream, \
            Transport(server.url, "exporter", "s3cret-pw", 10.0, "0" * 32,
                      bwlimit=2 * PIECE) as transport:
        drawn, spend = [], transport.spend
        transport.spend = lambda n: (drawn.append(n), spend(n))
        span = transport.span(stream, 0, 2 * PIECE)
        assert transport.send("PATCH", server.url + "/up", data=SpanBody(span)).ok
    assert server.requests[0].body == data[:2 * PIECE]
    assert drawn == [PIECE // 2] * 4 and transport.bytes_uploaded == 2 * PIECE
