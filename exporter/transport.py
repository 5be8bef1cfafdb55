"""HTTP to one importer: one `requests.Session`, a timeout on every call, HTTP Basic, the
sync's `X-Trace-Id` on every request, TLS verified (with the target's CA bundle if it names
one; there is no way to turn verification off).

Every `requests` exception and error status is translated here, once, into the tree of
`exporter.errors`; callers never see `requests`.
"""

import uuid
from typing import Any, BinaryIO, Callable, Iterator

import requests

from exporter import errors
from exporter.bandwidth import TokenBucket
from exporter.sendfile import PIECE, FileSpan, mount_sendfile
from model.protocol.stored_json import json_text

CHUNK = 256 * 1024


class MultipartFile:
    """A multipart/form-data body with one file part, the file sent as a `FileSpan`.

    `requests` would read a file given as `files=` into memory; this streams it and still
    sends a Content-Length (some servers refuse chunked uploads). Field and file name are
    `file`, as the MeteorPi exporter sends them."""

    def __init__(self, span: FileSpan):
        self.boundary = uuid.uuid4().hex
        self._span = span
        self._head = (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                      f"filename=\"file\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                      ).encode()
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self._head) + len(self._span) + len(self._tail)

    def __iter__(self) -> Iterator:
        yield self._head
        yield self._span
        yield self._tail


class MultipartFiles:
    """A multipart/form-data body of many files (version 2 `/blobs`), one part per file named
    `<file_id>.<md5>`. Files are opened one at a time as the body is sent and read in chunks
    through the bandwidth limit, so neither memory nor open files grow with the request."""

    def __init__(self, parts: list[tuple[str, Callable[[], BinaryIO], int]],
                 spend: Callable[[int], None]):
        self.boundary = uuid.uuid4().hex
        self._parts = parts                # (part name, opener, size)
        self._spend = spend
        self._tail = f"--{self.boundary}--\r\n".encode()

    def _head(self, name: str) -> bytes:
        return (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                ).encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return sum(len(self._head(name)) + size + 2 for name, _, size in self._parts) \
            + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        """The body in blocks of about CHUNK bytes: each block is one send(2), and a block per
        small file (three, with its head and CRLF) made the sending, not the files, the cost."""
        block, held = [], 0
        for piece in self._pieces():
            block.append(piece)
            held += len(piece)
            if held >= CHUNK:
                yield b"".join(block)
                block, held = [], 0
        block.append(self._tail)
        yield b"".join(block)

    def _pieces(self) -> Iterator[bytes]:
        for name, opener, size in self._parts:
            yield self._head(name)
            left = size
            with opener() as stream:
                while left > 0:
                    chunk = stream.read(min(CHUNK, left))
                    if not chunk:
                        raise errors.FinalError(f"part {name}: the file is shorter than its "
                                                "record says")
                    left -= len(chunk)
                    self._spend(len(chunk))
                    yield chunk
            yield b"\r\n"


def _message(response: requests.Response) -> str:
    """The importer's `message` from its JSON error shape, else the start of the body."""
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return body["message"]
    except ValueError:
        pass
    text = response.text.strip().replace("\n", " ")
    return text[:200] or response.reason or "no message"


def _retry_after(response: requests.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", 0)))
    except ValueError:
        return 0.0


def check_response(response: requests.Response) -> Any:
    """The JSON answer of a 2xx response, or the matching `ExportError`."""
    status, where = response.status_code, f"{response.request.method} {response.url}"
    if status == 401:
        raise errors.AuthError(f"the importer refused the user name or password (401) at "
                               f"{where}: {_message(response)}", status)
    if status == 403:
        raise errors.Forbidden(f"the user lacks the role 'import' on the importer (403): "
                               f"{_message(response)}", status)
    if status == 429 or status >= 500:
        raise errors.ServerError(f"importer error {status} at {where}: {_message(response)}",
                                 status, _retry_after(response))
    if status in (404, 405):
        raise errors.NotFound(f"no importer at {where} ({status}); check the target URL",
                              status)
    if status >= 300:
        raise errors.Refused(f"refused ({status}): {_message(response)}", status)
    try:
        return response.json()
    except ValueError:
        raise errors.ProtocolError(f"protocol: the answer to {where} is not JSON: "
                                   f"{response.text[:80]!r}", status) from None


class Transport:
    """Requests to one importer. Counts requests and bytes for reports and benchmarks."""

    def __init__(self, base_url: str, user: str, password: str, timeout_s: float,
                 trace_id: str, ca_bundle: str | None = None, bwlimit: int | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        mount_sendfile(self.session)
        self.session.auth = (user, password)
        self.session.verify = ca_bundle or True
        self.session.trust_env = False   # no proxy or netrc credentials from the environment
        self.session.headers.update({"X-Trace-Id": trace_id,
                                     "User-Agent": "skyrelay-exporter"})
        self.requests = 0
        self.bytes_uploaded = 0
        # Every path that sends file bytes draws from this bucket (the target's --bwlimit).
        self.bucket = TokenBucket(bwlimit)

    def sibling(self) -> "Transport":
        """Another transport to the same importer, for another thread: its own session
        (`requests` sessions are not shared between threads) and counters, the same
        bandwidth limit."""
        twin = Transport(self.base_url, *self.session.auth, self.timeout_s,
                         self.session.headers["X-Trace-Id"],
                         None if self.session.verify is True else self.session.verify)
        twin.bucket = self.bucket
        return twin

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def send(self, method: str, url: str, **kwargs) -> requests.Response:
        """One request with the session's auth, trace ID and timeout; connection problems
        become `errors.*`, the status is left to the caller (tus answers need reading)."""
        return self._send(method, url, **kwargs)

    def spend(self, nbytes: int) -> None:
        """`nbytes` of file data are about to go: wait for the bandwidth limit, count them."""
        self.bucket.take(nbytes)
        self.bytes_uploaded += nbytes

    def span(self, stream: BinaryIO, offset: int, length: int) -> FileSpan:
        """A range of a file to send as (part of) a body, through this target's limit."""
        return FileSpan(stream, offset, length, self.spend, self.bucket.piece(PIECE))

    def _send(self, method: str, url: str, **kwargs) -> requests.Response:
        self.requests += 1
        try:
            return self.session.request(method, url, timeout=self.timeout_s, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise errors.TLSError(f"TLS with {url} failed: {_reason(exc)}; if the importer "
                                  "uses its own CA, give the target --ca-bundle PATH") from None
        except requests.exceptions.Timeout:
            raise errors.TimedOut(f"no answer from {url} within {self.timeout_s} s") from None
        except requests.exceptions.ConnectionError as exc:
            raise errors.Unreachable(f"cannot connect to {url}: {_reason(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise errors.Unreachable(f"request to {url} failed: {_reason(exc)}") from None

    def post_json(self, body: dict, path: str = "") -> Any:
        """POST a JSON body to the import path (or below it) and return the JSON answer."""
        data = json_text(body).encode()
        return check_response(self._send("POST", self.base_url + path, data=data,
                                         headers={"Content-Type": "application/json"}))

    def upload(self, file_id: str, md5: str, stream: BinaryIO, size: int) -> Any:
        """Stream one file's bytes as version 1 does: multipart field `file`."""
        body = MultipartFile(self.span(stream, 0, size))
        return check_response(self._send(
            "POST", f"{self.base_url}/data/{file_id}/{md5}", data=body,
            headers={"Content-Type": body.content_type}))

    def post_blobs(self, parts: list[tuple[str, Callable[[], BinaryIO], int]]) -> Any:
        """Version 2: many small files in one multipart request to `{base}/blobs`."""
        body = MultipartFiles(parts, self.spend)
        return check_response(self._send("POST", f"{self.base_url}/blobs", data=body,
                                         headers={"Content-Type": body.content_type}))

    def get_json(self, url: str) -> Any:
        """GET an absolute URL of the importer's site (e.g. its /status routes)."""
        return check_response(self._send("GET", url))

    def capabilities(self) -> dict | None:
        """The version 2 capabilities, or None when the importer speaks version 1 only."""
        try:
            answer = check_response(self._send("GET", self.base_url + "/capabilities"))
        except errors.NotFound:
            return None
        if not isinstance(answer, dict) or not isinstance(answer.get("protocol"), list):
            raise errors.ProtocolError(f"protocol: capabilities are not an object with "
                                       f"'protocol': {str(answer)[:80]!r}")
        return answer


def _reason(exc: BaseException) -> str:
    """The innermost cause, which is what an admin can act on ("Connection refused"):
    requests wraps urllib3 errors, which wrap socket and ssl errors."""
    for _ in range(10):
        inner = getattr(exc, "reason", None) or exc.__cause__ or exc.__context__
        if not isinstance(inner, BaseException) or inner is exc:
            break
        exc = inner
    text = str(exc) or type(exc).__name__
    return text.split("] ", 1)[-1] if text.startswith("[") else text
