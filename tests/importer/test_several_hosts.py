"""A central archive on several hosts: two `skyrelay serve` processes on one PostgreSQL
database and one S3 bucket (each with its own port and its own temp folder, storage.path),
behind a real haproxy doing round robin without sticky sessions (tests/balancer.py, the
configuration docs/scale-out.md shows).

Every request may land on either host, so what must hold is what no single-host test can
show: a v1 handshake survives the per-process entity cache being on the other host; a v2
sync lands every entity and byte once; a resumable upload survives the death of the host it
was going to; two exporters sending the same data at once leave one copy of it.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from model.archive.sample import SampleWriter
from model.site import open_site
from skyrelay import config as config_module
from skyrelay.demo import verify
from tests.balancer import Balancer, free_port, haproxy_config, in_front_of, require_haproxy
from tests.meteorpi import BODIES, FILE_BYTES
from tests.server import Server, password_of
from tests.v2_helpers import md5_hex, new_id, tus_metadata

pytestmark = pytest.mark.slow
TIMEOUT = 30
PREFIX = "archive/"
USERS = {"exporter": ["import", "user"], "exporter2": ["import", "user"],
         "reader": ["user"]}
# Small files go through /blobs, the larger half of the generated PNGs (≈0.6–2.4 KB) as
# resumable uploads in chunks of 1200 bytes, so one file's two PATCHes go to both hosts.
EXPORTER = {"exporter.timeout_s": TIMEOUT, "exporter.backoff_base_s": 1,
            "exporter.small_file_bytes": 1500, "exporter.upload_chunk_bytes": 1200}
SHAPE = {"cameras": 2, "events_per_camera": 6, "files_per_event": 2,
         "standalone_per_camera": 2}          # 16 entities, 28 files, 2 statuses
ENTITIES = 16


class Host(Server):
    """A `skyrelay serve` on a port that stays the same across a restart, since the
    balancer's configuration names it. Its users are in the shared database (the fixture
    adds them once), so starting it adds none."""

    def kill(self) -> None:
        """SIGKILL to gunicorn's master and workers at once: a crash (the kernel still
        closes its connections, which a power loss would not)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def access_lines(self) -> list[str]:
        return [line for line in self.log().splitlines() if " skyrelay.access: " in line]

    def traces_served(self) -> list[str]:
        """The X-Trace-Id of every request this host answered, in order (access log)."""
        return [line.rsplit("trace=", 1)[1].strip() for line in self.access_lines()]


class Central:
    """The two hosts, the balancer in front, and what they share."""

    def __init__(self, hosts: list[Host], balancer: Balancer, database_url: str,
                 bucket: str, store):
        self.hosts, self.balancer = hosts, balancer
        self.database_url, self.bucket, self.store = database_url, bucket, store
        self.url = balancer.url
        self.import_url = balancer.url + "/import"
        self.engine = create_engine(database_url)

    def host_of(self, trace_id: str) -> str:
        """Which host answered the request sent with `trace_id` (exactly one must have)."""
        found = [host.settings["site.name"] for host in self.hosts
                 if trace_id in host.traces_served()]
        assert len(found) == 1, f"request {trace_id} answered by {found}"
        return found[0]

    def hosts_of_trace(self, trace_id: str) -> dict[str, int]:
        """How many requests of `trace_id` each host answered."""
        return {host.settings["site.name"]: host.traces_served().count(trace_id)
                for host in self.hosts}

    def span(self, trace_id: str) -> tuple[datetime, datetime]:
        """When the first and the last request of `trace_id` were answered, on any host."""
        times = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                 for host in self.hosts for line in host.access_lines()
                 if line.endswith(f" trace={trace_id}")]
        return min(times), max(times)

    def sql(self, query: str) -> list:
        with self.engine.connect() as conn:
            return conn.execute(text(query)).all()

    def object_keys(self, under: str = "") -> list[str]:
        client, keys, token = self.store.client(), [], {}
        while True:
            page = client.list_objects_v2(Bucket=self.bucket, Prefix=PREFIX + under, **token)
            keys += [item["Key"] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def object_bytes(self, sha256: str) -> bytes:
        answer = self.store.client().get_object(Bucket=self.bucket,
                                                Key=f"{PREFIX}blobs/{sha256}")
        return answer["Body"].read()


@pytest.fixture(scope="module")
def central(tmp_path_factory, pg_cluster, object_store):
    require_haproxy()
    root = tmp_path_factory.mktemp("central")
    database_url = pg_cluster.url(pg_cluster.new_database(pg_cluster.template))
    bucket = object_store.new_bucket()
    shared = {"database.url": database_url, "storage.path": "tmp",
              **object_store.settings(bucket, PREFIX)}
    hosts = [Host(root / name, name=name, settings=shared, port=free_port())
             for name in ("host1", "host2")]
    site = hosts[0].open_site()              # the users are in the shared database
    try:
        for name, roles in USERS.items():
            site.users.add(name, password_of(name), roles)
    finally:
        site.close()
    with in_front_of(root, hosts) as balancer:
        central = Central(hosts, balancer, database_url, bucket, object_store)
        yield central
        central.engine.dispose()


def auth(user: str = "exporter") -> tuple[str, str]:
    return user, password_of(user)


def new_trace() -> str:
    return "t" + uuid.uuid4().hex


@pytest.mark.parametrize("page", ["README.md", "docs/scale-out.md"])
def test_the_documented_haproxy_stanza_is_the_one_tested(page):
    """The README and docs/scale-out.md show the configuration these tests run, with example
    addresses."""
    documented = (Path(__file__).parents[2] / page).read_text()
    tested = haproxy_config("*:8800", ["10.0.0.11:8800", "10.0.0.12:8800"],
                            "/run/haproxy/admin.sock")
    assert f"```\n{tested}```" in documented


# -- version 1: the handshake's requests alternate hosts --------------------------------------

def test_v1_handshake_completes_when_its_requests_alternate_hosts(central):
    event = BODIES["event"]["event"]
    full, cached = BODIES["event"], {"type": "cached_entity",
                                     "cached_entity_id": event["event_id"]}
    sent = []                               # (trace ID, what was sent, the answer's state)
    session = requests.Session()
    session.auth = auth()

    def post(body, what: str) -> dict:
        trace = new_trace()
        answer = session.post(central.import_url, json=body, timeout=TIMEOUT,
                              headers={"X-Trace-Id": trace})
        assert answer.status_code == 200, answer.text
        sent.append((trace, what, answer.json()["state"]))
        return answer.json()

    def upload(file_id: str) -> None:
        trace, data = new_trace(), FILE_BYTES[file_id]
        answer = session.post(f"{central.import_url}/data/{file_id}/{md5_hex(data)}",
                              files={"file": ("file", data)}, timeout=TIMEOUT,
                              headers={"X-Trace-Id": trace})
        assert answer.status_code == 200 and answer.json()["received"] is True, answer.text
        sent.append((trace, "data", "continue"))

    def someone_else_asks() -> None:
        """Another client's request between two of ours: with two hosts in round robin it
        moves our next request to the host that did not get the full entity."""
        trace = new_trace()
        session.get(central.import_url + "/capabilities", timeout=TIMEOUT,
                    headers={"X-Trace-Id": trace}).raise_for_status()
        sent.append((trace, "other", "-"))

    answer = post(full, "full")
    someone_else_asks()
    for _ in range(20):
        state = answer["state"]
        if state == "complete":
            break
        if state == "need_status":
            assert post(BODIES["status"], "status")["state"] == "continue"
        elif state == "need_file_data":
            upload(answer["file_id"])
        else:
            assert state in ("continue", "continue-nocache"), answer
        answer = post(full, "full") if state == "continue-nocache" else post(cached, "cached")
    assert answer["state"] == "complete", sent
    session.close()

    served = [(central.host_of(trace), what, state) for trace, what, state in sent]
    assert {host for host, _, _ in served} == {"host1", "host2"}, served
    # A cached_entity request is answered from the cache of the host it lands on: a miss,
    # continue-nocache, exactly where that host never got the entity in full.
    had_it, misses = set(), 0
    for host, what, state in served:
        if what == "full":
            had_it.add(host)
        elif what == "cached":
            assert (state == "continue-nocache") == (host not in had_it), served
            misses += state == "continue-nocache"
    assert misses >= 1, served

    reader = requests.Session()
    reader.auth = auth("reader")
    stored = reader.get(f"{central.url}/api/events/{event['event_id']}", timeout=TIMEOUT)
    assert stored.status_code == 200 and stored.json()["event_id"] == event["event_id"]
    for record in event["files"]:
        data = reader.get(f"{central.url}/api/files/{record['file_id']}/data",
                          timeout=TIMEOUT)
        assert data.status_code == 200 and data.content == FILE_BYTES[record["file_id"]]
    reader.close()


# -- version 2: skyrelay's own exporter through the balancer ----------------------------------

def exporter_site(root, central: Central, seed: int, user: str = "exporter"):
    """A separate exporter site (SQLite, local blobs) filled with generated data (the same
    for the same seed), with a target `central` at the balancer."""
    site = Server(root, settings=EXPORTER)
    opened = open_site(config_module.load(site.config_path, environ={}))
    try:
        generated = SampleWriter(opened.archive, seed=seed).fill(**SHAPE)
        opened.targets.add("central", central.import_url, user, password_of(user))
    finally:
        opened.close()
    return site, generated


def sync_command(site: Server) -> list[str]:
    return [sys.executable, "-m", "skyrelay", "--config", str(site.config_path), "sync",
            "--no-progress"]


def trace_of(sync_stderr: str) -> str:
    return sync_stderr.split("sync starting, trace ")[1].split()[0]


def tried(summary: str) -> tuple[int, int]:
    """(sent, already present) from a sync's one-line summary."""
    sent = int(summary.split("sent ")[1].split(",")[0])
    return sent, int(summary.split("already present ")[1].split(",")[0])


def assert_each_once(central: Central, generated) -> None:
    """Every entity one row, every distinct content one blob row and one object under
    blobs/, no object of a finished upload left elsewhere, and the bytes are the file's."""
    events = [e.event_id for e in generated.events]
    files = [f.file_id for f in generated.all_file_records()]
    for table, column, ids in (("events", "event_id", events), ("files", "file_id", files)):
        listed = ",".join(f"'{i}'" for i in ids)
        rows = central.sql(f"SELECT {column}, count(*) FROM {table} "
                           f"WHERE {column} IN ({listed}) GROUP BY {column}")
        assert sorted(r[0] for r in rows) == sorted(ids) and {r[1] for r in rows} == {1}
    assert central.sql("SELECT sha256 FROM blobs GROUP BY sha256 HAVING count(*) > 1") == []
    held = {r[0] for r in central.sql("SELECT sha256 FROM blobs")}
    objects = central.object_keys("blobs/")
    assert len(objects) == len(set(objects))
    assert {key.rsplit("/", 1)[1] for key in objects} == held
    assert central.object_keys("uploads/") == [] and central.object_keys("tails/") == []
    for record in generated.all_file_records():
        sha = central.sql(f"SELECT sha256 FROM files WHERE file_id = '{record.file_id}'")
        assert hashlib.md5(central.object_bytes(sha[0][0])).hexdigest() == record.md5


def test_v2_sync_through_the_balancer_lands_everything_once(central, tmp_path):
    east, generated = exporter_site(tmp_path / "east", central, seed=11)
    result = east.cli("sync", "--no-progress", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert tried(result.stdout) == (ENTITIES, 0), result.stdout
    served = central.hosts_of_trace(trace_of(result.stderr))
    assert served["host1"] > 0 and served["host2"] > 0, served
    checked = verify(central.url, auth(), generated)
    assert checked.problems == [] and checked.files_matched == 28
    assert_each_once(central, generated)


def test_two_exporters_with_the_same_data_at_once_leave_one_copy(central, tmp_path):
    north, generated = exporter_site(tmp_path / "north", central, seed=23)
    south, same = exporter_site(tmp_path / "south", central, seed=23, user="exporter2")
    assert [e.event_id for e in same.events] == [e.event_id for e in generated.events]
    running = [subprocess.Popen(sync_command(site), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=site.root,
                                env=site._env())
               for site in (north, south)]
    outputs = [process.communicate(timeout=120) for process in running]
    for process, (out, err) in zip(running, outputs):
        assert process.returncode == 0, out + err
        sent, present = tried(out)
        assert sent + present == ENTITIES, out
    (first_start, first_end), (second_start, second_end) = \
        [central.span(trace_of(err)) for _, err in outputs]
    assert first_start < second_end and second_start < first_end   # they did overlap
    checked = verify(central.url, auth(), generated)
    assert checked.problems == [] and checked.files_matched == 28
    assert_each_once(central, generated)


# -- a resumable upload outlives the host it was going to -------------------------------------

class KillHalfway:
    """A request body of known length (so sent with Content-Length, as tus clients do) that
    runs `kill` once half of it has gone out."""

    def __init__(self, data: bytes, kill):
        self.data, self.kill, self.sent = data, kill, 0

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        raise AssertionError("read() is how a body of known length is sent")

    def read(self, size: int = -1) -> bytes:
        if self.kill and self.sent >= len(self.data) // 2:
            time.sleep(0.3)                    # the first half reaches the host meanwhile
            self.kill()
            self.kill = None
        size = len(self.data) if size < 0 else size
        piece = self.data[self.sent:self.sent + size]
        self.sent += len(piece)
        return piece


def tus_headers(**extra: str) -> dict:
    return {"Tus-Resumable": "1.0.0", **extra}


def test_upload_resumes_on_host2_after_host1_is_killed_mid_chunk(central):
    # Parts are 16 MiB (model/store/s3_partial.py): three chunks of 7 MiB make one part and a
    # 5 MiB tail; the fourth chunk dies with host1 halfway; the last one ends the upload.
    data = os.urandom(28 * 1024 * 1024)
    chunk = 7 * 1024 * 1024
    file_id, sha256 = new_id(), hashlib.sha256(data).hexdigest()
    session = requests.Session()
    session.auth = auth()
    created = session.post(central.import_url + "/uploads", timeout=TIMEOUT,
                           headers=tus_headers(**{"Upload-Length": str(len(data)),
                                                  "Upload-Metadata": tus_metadata(
                                                      file_id, md5_hex(data))}))
    assert created.status_code == 201, created.text
    url = created.headers["Location"]
    assert url.startswith(central.url + "/import/uploads/"), url   # the balancer's address

    def patch(offset: int, body, trace: str | None = None) -> requests.Response:
        return session.patch(url, data=body, timeout=TIMEOUT, headers=tus_headers(**{
            "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
            "X-Trace-Id": trace or new_trace()}))

    offset, first_chunks = 0, [new_trace() for _ in range(3)]
    for trace in first_chunks:
        answer = patch(offset, data[offset:offset + chunk], trace)
        assert answer.status_code == 204, answer.text
        offset = int(answer.headers["Upload-Offset"])
    assert offset == 3 * chunk
    assert {central.host_of(trace) for trace in first_chunks} == {"host1", "host2"}
    host1, host2 = central.hosts
    central.balancer.set_state("host2", "maint")       # the next chunk surely goes to host1
    try:
        with pytest.raises(requests.RequestException):
            patch(offset, KillHalfway(data[offset:offset + chunk], host1.kill)) \
                .raise_for_status()
    finally:
        central.balancer.set_state("host2", "ready")
    assert host1.process.poll() is not None            # it died mid-chunk
    try:
        head = session.head(url, timeout=TIMEOUT, headers=tus_headers(
            **{"X-Trace-Id": (head_trace := new_trace())}))
        assert head.status_code == 200, head.text
        assert central.host_of(head_trace) == "host2"
        # The killed chunk counts for nothing, the ones before it for all their bytes.
        assert int(head.headers["Upload-Offset"]) == offset
        while offset < len(data):
            answer = patch(offset, data[offset:offset + chunk])
            assert answer.status_code == 204, answer.text
            offset = int(answer.headers["Upload-Offset"])
        assert offset == len(data)
    finally:
        if host1.process.poll() is not None:
            host1.start()                              # same port: the balancer finds it
        central.balancer.wait_for_states({"host1": "UP", "host2": "UP"})
    session.close()
    assert central.object_bytes(sha256) == data
    site = host2.open_site()
    try:
        assert site.archive.has_data(file_id, md5_hex(data))
    finally:
        site.close()
