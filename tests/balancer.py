"""A real load balancer for the tests: Debian's haproxy in the foreground (`haproxy -f cfg
-db`) on a free loopback port, round robin over several `skyrelay serve` hosts.

The configuration is the one docs/scale-out.md shows (`haproxy_config`), so what the tests
prove is what an operator would run:

- round robin, no sticky sessions: the importer keeps no state a request needs in one
  process (the v1 entity cache only saves bytes; a miss answers `continue-nocache`);
- `option http-server-close`: each request is balanced on its own and opens a fresh backend
  connection, so no idle connection to a host that died is ever reused;
- retries only when the connection to a host could not be made (`retry-on conn-failure`),
  then to another host (`option redispatch`): nothing of the request was sent, so no PATCH
  body is ever replayed; a request cut mid-body is the client's to resume (tus HEAD);
- timeouts long enough for a large chunk (`timeout server 120s`: a PATCH's answer comes
  after its last byte is stored), short for connecting (5 s);
- a health check per host every second: a dead host gets no new requests after two failed
  checks, and before that a refused connection is redispatched anyway;
- the runtime API on a Unix socket (`states`, `set_state`): what the checks see, and a host
  taken out (drain, maintenance) by hand.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import requests

HAPROXY = "/usr/sbin/haproxy"
START_TIMEOUT_S = 15
CHECK_PATH = "/import/capabilities"   # 401 without credentials: any answer means "up"
BACKEND = "importers"


def require_haproxy() -> None:
    """Skip without haproxy on a developer machine; fail in CI (CI=true), whose .ci/run
    installs it."""
    if shutil.which(HAPROXY):
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{HAPROXY} not found in CI")
    pytest.skip(f"{HAPROXY} not found (apt-get install haproxy)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def haproxy_config(bind: str, backends: list[str], admin_socket: str,
                   check_path: str = CHECK_PATH) -> str:
    """The haproxy.cfg of a balancer listening on `bind` ("address:port") in front of
    `backends` ("address:port" of each `skyrelay serve`, named host1, host2, …), with its
    runtime API on the Unix socket `admin_socket` (host states, drain, maintenance)."""
    servers = "\n".join(f"    server host{number} {address} check inter 1s fall 2 rise 1"
                        for number, address in enumerate(backends, start=1))
    return f"""\
global
    maxconn 1000
    stats socket {admin_socket} mode 600 level admin

defaults
    mode http
    option http-server-close
    option forwardfor
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout http-request 30s
    timeout http-keep-alive 10s
    timeout queue 30s
    retries 2
    retry-on conn-failure
    option redispatch 1

frontend skyrelay
    bind {bind}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    option httpchk GET {check_path}
    http-check expect rstatus ^[234]
{servers}
"""


class Balancer:
    """haproxy in front of `backends`; `url` is where clients go."""

    def __init__(self, root: Path, backends: list[str]):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = self.root / "haproxy.cfg"
        self.admin_socket = self.root / "admin.sock"
        self.config_path.write_text(haproxy_config(f"127.0.0.1:{self.port}", backends,
                                                   str(self.admin_socket)))
        self.log_path = self.root / "haproxy.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Balancer":
        if not shutil.which(HAPROXY):
            raise RuntimeError(f"{HAPROXY} not found (apt-get install haproxy)")
        checked = subprocess.run([HAPROXY, "-c", "-f", str(self.config_path)],
                                 capture_output=True, text=True, timeout=30)
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy refuses its config:\n{checked.stdout}"
                               f"{checked.stderr}")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([HAPROXY, "-f", str(self.config_path), "-db"],
                                            stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.root,
                                            start_new_session=True)
        try:
            self.wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_until_answering(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until an HTTP answer from a backend comes through (a 503 means haproxy is up but
        has no healthy host yet: keep waiting)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}:\n"
                                   + self.log())
            try:
                answer = requests.get(self.url + CHECK_PATH, timeout=2)
                if answer.status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"haproxy did not pass a request within {timeout} s:\n" + self.log())

    # -- haproxy's runtime API (the admin socket) -------------------------------------------

    def command(self, line: str) -> str:
        """One runtime API command (`show stat`, `set server importers/host1 state maint`)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin_socket))
            sock.sendall(line.encode() + b"\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return answer.decode()

    def states(self) -> dict[str, str]:
        """{"host1": "UP", "host2": "DOWN", …} as haproxy's health checks see them now
        ("MAINT" for a host set to maintenance)."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
        return {row["svname"]: row["status"].split()[0] for row in rows
                if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")}

    def set_state(self, host: str, state: str) -> None:
        """`ready`, `drain` (no new requests) or `maint` (none at all) for one host."""
        answer = self.command(f"set server {BACKEND}/{host} state {state}")
        if answer.strip():
            raise RuntimeError(f"haproxy refused to set {host} {state}: {answer.strip()}")

    def wait_for_states(self, wanted: dict[str, str], timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while (seen := self.states()) != {**seen, **wanted}:
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy sees {seen}, not {wanted}, after {timeout} s")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)   # -db: haproxy stops at once on SIGTERM
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> "Balancer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


@contextmanager
def in_front_of(root: Path, hosts: list) -> Iterator[Balancer]:
    """Start `hosts` (`tests.server.Server`s on fixed ports) and a balancer in front of them,
    once every host is up by its health check; stop them all after."""
    balancer = Balancer(root / "balancer", [f"127.0.0.1:{host.port}" for host in hosts])
    try:
        for host in hosts:
            host.start()
        balancer.start()
        balancer.wait_for_states({f"host{number}": "UP"
                                  for number in range(1, len(hosts) + 1)})
        yield balancer
    finally:
        balancer.stop()
        for host in hosts:
            host.stop()
