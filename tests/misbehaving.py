"""Small, real, deliberately misbehaving HTTP servers for fault tests of the exporter.

Each is a `ThreadingHTTPServer` on 127.0.0.1, port 0, in a thread, whose answers come from a
plain function `(request) -> (status, headers, body)`. They record every request (method,
path, headers, body) so tests can check what the exporter really sent. Optional TLS with a
self-signed certificate made by the openssl command line tool.
"""

import json
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes


Answer = tuple[int, dict, bytes]


def json_answer(data, status: int = 200, headers: dict | None = None) -> Answer:
    return status, {"Content-Type": "application/json", **(headers or {})}, \
        json.dumps(data).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, self.path, dict(self.headers), body)
        self.server.owner.requests.append(request)
        status, headers, payload = self.server.owner.answer(request)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def log_message(self, *args):
        pass


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client that gave up (timeout tests) is expected; anything else is reported."""
        import sys
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class Server:
    """`with Server(answer) as server: server.url` …"""

    def __init__(self, answer: Callable[[Request], Answer], certfile: Path | None = None):
        self.answer = answer
        self.requests: list[Request] = []
        self.httpd = _Quiet(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        scheme = "http"
        if certfile is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> "Server":
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self.httpd.shutdown()
        self.httpd.server_close()


# -- behaviours ------------------------------------------------------------------------------

def always(answer: Answer) -> Callable[[Request], Answer]:
    return lambda request: answer


def always_need_file_data(request: Request) -> Answer:
    """Asks for the first file of whatever it gets, forever, and accepts every upload."""
    if "/data/" in request.path:
        return json_answer({"state": "continue", "received": True})
    try:
        body = json.loads(request.body)
    except ValueError:
        return json_answer({"state": "failed", "message": "not JSON"}, 400)
    entity = body.get("event") or body.get("file")
    if entity is None:   # cached form: keep asking for the one we asked for before
        file_id = always_need_file_data.last
    else:
        records = entity.get("files", [entity])
        file_id = records[0]["file_id"] if records else "0" * 32
    always_need_file_data.last = file_id
    return json_answer({"state": "need_file_data", "file_id": file_id})


always_need_file_data.last = "0" * 32


def slow(seconds: float, answer: Answer) -> Callable[[Request], Answer]:
    def respond(request):
        time.sleep(seconds)
        return answer
    return respond


def self_signed_cert(folder: Path) -> Path:
    """A certificate + key for 127.0.0.1 in one PEM file (also usable as a CA bundle)."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    both = folder / "server.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    return both
