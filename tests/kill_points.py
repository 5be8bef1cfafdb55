"""Crash tests' kit: kill a real `skyrelay serve` at a chosen point of a request body, start it
again on the same config, and check what the crash left in the database and the object store.

"At a point" means: the server has read exactly the first N bytes of the body. The test
process sends N bytes, then waits until the kernel holds none of them any more (the client's
send queue and the server's receive queue, both read from /proc/net/tcp, are empty), so the
kill lands after the server's own code took those bytes, not while they sit in a socket
buffer that may hold several MiB on loopback. Optionally it then waits for something to be
seen in the store (an object appearing) before the SIGKILL goes to the server's process group.

`StoreState.check` is the crash invariant, read straight from the database and the bucket:
- every `blobs` row's object is there and its bytes have the row's MD5, SHA-256 and size
  (no row without its object, no corrupt object counted);
- every resumable upload's ledger adds up: its parts' sizes plus the tail make the ledger's
  received bytes, which are the upload row's offset; each part the ledger names is in the
  store's multipart upload with the same ETag and size, and the tail object has its length.
Objects nothing names (a crash between the store and the database) are allowed, for `gc`:
they are counted, not refused.
"""

import hashlib
import http.client
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from botocore.exceptions import ClientError
from sqlalchemy import create_engine, select

from model.store import schema

HTTP_TIMEOUT_S = 60
DRAIN_TIMEOUT_S = 20
READ_THREADS = 8


# --- the server: killed and started again ----------------------------------------------------

class KillableServer:
    """A `skyrelay serve` made by `make` (tests.server's server_factory), SIGKILLed whole
    (gunicorn master and workers: one process group) and started again with the same name,
    hence the same folder, config, database and bucket. Restart times are kept: they are most
    of a crash test's run time."""

    def __init__(self, make: Callable, name: str, users: dict, settings: dict):
        self._make, self.name, self.settings = make, name, settings
        self.server = make(name, users=users, settings=settings)
        self.restart_seconds: list[float] = []

    @property
    def url(self) -> str:
        return self.server.url

    def kill(self) -> None:
        process = self.server.process
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(10)

    def restart(self) -> None:
        started = time.monotonic()
        self.server = self._make(self.name, settings=self.settings)
        self.restart_seconds.append(time.monotonic() - started)


# --- a request body cut by a kill ------------------------------------------------------------

@dataclass
class Sent:
    """How a request ended: its answer, or none because the server was killed first."""
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: bytes = b""

    @property
    def answered(self) -> bool:
        return self.status is not None


def send(url: str, method: str, path: str, headers: dict, body, kill_after: int | None = None,
         kill: Callable[[], None] | None = None,
         wait_for: Callable[[], bool] | None = None) -> Sent:
    """Send `body` (with its Content-Length). With `kill_after`: once the server has read
    that many bytes of it (and `wait_for()` turned true, if given), `kill()`; then keep
    sending the rest, as a client that does not know yet, and take whatever answer comes."""
    where = urlsplit(url)
    body = memoryview(body)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=HTTP_TIMEOUT_S)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders()
        stop = len(body) if kill_after is None else kill_after
        _send_quietly(connection, body[:stop])
        if kill_after is not None:
            wait_until_read(connection.sock)
            if wait_for is not None:
                poll(wait_for, what="the awaited state before the kill")
            kill()
            _send_quietly(connection, body[stop:])
        return _answer(connection)
    finally:
        connection.close()


def _send_quietly(connection, data) -> None:
    try:
        connection.sock.sendall(data)
    except OSError:          # the server answered early and closed, or was killed
        pass


def _answer(connection) -> Sent:
    try:
        response = connection.getresponse()
        return Sent(response.status, dict(response.getheaders()), response.read())
    except (OSError, http.client.HTTPException):
        return Sent()


def wait_until_read(sock, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Until every byte sent on `sock` was read by the process at the other end (loopback)."""
    here, there = sock.getsockname()[1], sock.getpeername()[1]

    def drained() -> bool:
        queues = _tcp_queues()
        ours, theirs = queues.get((here, there)), queues.get((there, here))
        assert ours and theirs, f"no loopback IPv4 connection {here} <-> {there} in " \
                                "/proc/net/tcp (the server closed it?)"
        return ours[0] == 0 and theirs[1] == 0
    poll(drained, timeout_s, what=f"the server reading everything sent on port {here}")


def _tcp_queues() -> dict[tuple[int, int], tuple[int, int]]:
    """(local port, remote port) → (send queue, receive queue) of every IPv4 TCP socket."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        sending, receiving = (int(value, 16) for value in queues.split(":"))
        found[(int(local.split(":")[1], 16), int(remote.split(":")[1], 16))] = \
            (sending, receiving)
    return found


def poll(condition: Callable[[], bool], timeout_s: float = DRAIN_TIMEOUT_S,
         interval_s: float = 0.002, what: str = "a condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


# --- what a crash left: the invariants -------------------------------------------------------

@dataclass
class Checked:
    blob_rows: int = 0
    ledger_entries: int = 0
    objects: int = 0              # objects and parts whose bytes or ETags were compared
    strays: int = 0               # objects no row names (gc's job)
    stray_multipart: int = 0      # multipart uploads no ledger names (gc's job)


class StoreState:
    """The database and bucket of one site, read directly (no skyrelay code but its schema)."""

    def __init__(self, database_url: str, client, bucket: str, prefix: str):
        self.database_url, self.client = database_url, client
        self.bucket, self.prefix = bucket, prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def object_exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def keys(self, under: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.key(under))
        return [item["Key"] for page in pages for item in page.get("Contents", ())]

    def rows(self) -> dict[str, list]:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return {name: list(conn.execute(select(table))) for name, table in (
                    ("blobs", schema.blobs), ("staged", schema.staged),
                    ("uploads", schema.uploads), ("ledger", schema.multipart_uploads),
                    ("parts", schema.multipart_parts))}
        finally:
            engine.dispose()

    def staged(self) -> dict[tuple[str, str], str]:
        """(file ID, MD5) → SHA-256 of every staged file."""
        return {(row.file_id, row.md5): row.sha256 for row in self.rows()["staged"]}

    def check(self) -> Checked:
        """Assert the crash invariants (see the module's docstring); return the counts."""
        rows, checked = self.rows(), Checked()
        checked.blob_rows = len(rows["blobs"])
        with ThreadPoolExecutor(READ_THREADS) as pool:
            problems = [p for p in pool.map(self._blob_problem, rows["blobs"]) if p]
        assert not problems, f"blob rows whose object is missing or wrong: {problems}"
        checked.objects += len(rows["blobs"])
        uploads = {row.upload_id: row for row in rows["uploads"]}
        ledger = {row.upload_id: row for row in rows["ledger"]}
        missing = sorted(set(uploads) - set(ledger))
        assert not missing, f"upload rows without a ledger entry: {missing}"
        for entry in ledger.values():
            parts = [p for p in rows["parts"] if p.upload_id == entry.upload_id]
            checked.objects += self._check_ledger(entry, parts, uploads.get(entry.upload_id))
            checked.ledger_entries += 1
        checked.strays = self._count_strays(rows, uploads, ledger)
        checked.stray_multipart = self._count_stray_multipart(ledger)
        return checked

    def _blob_problem(self, row) -> str | None:
        try:
            data = self.read(self.key(f"blobs/{row.sha256}"))
        except ClientError as exc:
            return f"{row.sha256}: {exc.response['Error']['Code']}"
        found = (hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest(), len(data))
        if found != (row.md5, row.sha256, row.size):
            return f"{row.sha256}: the object has (md5, sha256, size) {found}"
        return None

    def _check_ledger(self, entry, parts, upload) -> int:
        """The ledger adds up and agrees with the store; returns the objects compared."""
        sizes = sum(p.size for p in parts)
        where = f"ledger of upload {entry.upload_id}"
        assert sizes + entry.tail_bytes == entry.received_bytes, \
            f"{where}: parts {sizes} + tail {entry.tail_bytes} != {entry.received_bytes}"
        if upload is not None:
            assert entry.received_bytes == upload.received_bytes, \
                f"{where}: {entry.received_bytes} bytes, the upload row says " \
                f"{upload.received_bytes}"
        numbers = [p.part_number for p in parts]
        assert numbers == list(range(1, len(parts) + 1)), f"{where}: part numbers {numbers}"
        if upload is None or upload.complete:
            return 0          # completed: the blob row (if any) was checked as a blob
        compared = 0
        stored = self._stored_parts(entry)
        if stored is None:
            assert entry.received_bytes == entry.length, \
                f"{where}: the store has no multipart upload {entry.multipart_id} for an " \
                f"upload at {entry.received_bytes} of {entry.length} bytes"
            return 0      # all bytes in: completed by a commit the crash cut short
        for part in parts:
            assert stored.get(part.part_number) == (part.etag, part.size), \
                f"{where}: part {part.part_number} is {stored.get(part.part_number)} in " \
                f"the store, ({part.etag}, {part.size}) in the ledger"
            compared += 1
        if entry.tail_key:
            tail = self.read(entry.tail_key)
            assert len(tail) == entry.tail_bytes, \
                f"{where}: tail {entry.tail_key} holds {len(tail)} bytes, not {entry.tail_bytes}"
            compared += 1
        return compared

    def _stored_parts(self, entry) -> dict[int, tuple[str, int]] | None:
        """The store's parts of the entry's multipart upload; None if it has none such."""
        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=entry.object_key, UploadId=entry.multipart_id)
        try:
            return {part["PartNumber"]: (part["ETag"], part["Size"])
                    for page in pages for part in page.get("Parts", ())}
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchUpload":
                return None
            raise

    def _count_strays(self, rows, uploads, ledger) -> int:
        named = {self.key(f"blobs/{row.sha256}") for row in rows["blobs"]}
        for entry in ledger.values():
            upload = uploads.get(entry.upload_id)
            if upload is not None and not upload.complete:
                named.add(entry.object_key)
                if entry.tail_key:
                    named.add(entry.tail_key)
        return sum(1 for key in self.keys("") if key not in named)

    def _count_stray_multipart(self, ledger) -> int:
        known = {(entry.object_key, entry.multipart_id) for entry in ledger.values()}
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix)
        return sum(1 for page in pages for upload in page.get("Uploads", ())
                   if (upload["Key"], upload["UploadId"]) not in known)


# --- what a test reports ---------------------------------------------------------------------

@dataclass
class Tally:
    """A crash test's counts: rows and objects checked add up over every check; the strays
    are those of the last check."""
    kills: int = 0
    killed_before_the_answer: int = 0
    resumes_landed: int = 0
    rows_checked: int = 0
    objects_checked: int = 0
    strays: int = 0
    stray_multipart: int = 0

    def add(self, checked: Checked) -> None:
        self.rows_checked += checked.blob_rows + checked.ledger_entries
        self.objects_checked += checked.objects
        self.strays, self.stray_multipart = checked.strays, checked.stray_multipart

    def verify(self, state: StoreState, restart_seconds: list[float]) -> Checked:
        """`state.check()`, its failure message carrying the counts so far."""
        try:
            checked = state.check()
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n[{self.summary(restart_seconds)}]") from None
        self.add(checked)
        return checked

    def killed(self, sent: Sent) -> None:
        self.kills += 1
        self.killed_before_the_answer += not sent.answered

    def note(self, line: str) -> None:
        print(line)

    def summary(self, restart_seconds: list[float]) -> str:
        slowest = max(restart_seconds, default=0.0)
        mean = sum(restart_seconds) / len(restart_seconds) if restart_seconds else 0.0
        return (f"kills {self.kills} ({self.killed_before_the_answer} before the server "
                f"answered), resumes landed {self.resumes_landed}, rows checked "
                f"{self.rows_checked}, objects checked {self.objects_checked}, stray objects "
                f"left {self.strays} (+{self.stray_multipart} multipart uploads); "
                f"restart {mean:.2f} s mean, {slowest:.2f} s max")
