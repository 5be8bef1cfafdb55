"""A real `python -m skyrelay serve` in a subprocess, with its own site in a folder.

For tests (and benchmarks) that need the program as users run it: real gunicorn, real
sockets on loopback, users created with `skyrelay user add --password-stdin`. Reusable for
multi-site tests: each `Server` has its own config, database and blob folder.

    with Server(tmp_path / "a", users={"exporter": ["import"]}) as site:
        requests.post(site.import_url, json=body, auth=site.auth("exporter"), timeout=10)

The `server_factory` fixture (importable into a conftest or test module) starts servers on
demand and stops them all at the end of the test.
"""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import pytest
import requests

from skyrelay.sites import config_tree, serve_command, serve_env, stop_server

START_TIMEOUT_S = 30


def password_of(user: str) -> str:
    """Test users get a predictable password (never used outside tests)."""
    return f"{user}-secret-password"


class Server:
    def __init__(self, root: Path, users: Mapping[str, Iterable[str]] | None = None,
                 settings: Mapping[str, Any] | None = None, workers: int = 1,
                 name: str | None = None, port: int = 0):
        """`port` 0: a free one, chosen at each start."""
        self.root = Path(root)
        self.port = port
        self.root.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.settings = {"site.name": name or self.root.name,
                         "database.url": "sqlite:///site.db", "storage.path": "blobs",
                         **(settings or {})}
        self.config_path = self.root / "config.yaml"
        # JSON is YAML: no quoting surprises in the config file.
        self.config_path.write_text(json.dumps(config_tree(self.settings), indent=1))
        self.users = dict(users or {})
        self._added: dict[str, bool] = {}
        self.process: subprocess.Popen | None = None
        self.url: str | None = None

    # -- the command line -------------------------------------------------------------------

    def _env(self) -> dict:
        return serve_env()

    def cli(self, *args: str, stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run `skyrelay --config <this site> ARGS…` to completion."""
        result = subprocess.run(
            [sys.executable, "-m", "skyrelay", "--config", str(self.config_path), *args],
            input=stdin, capture_output=True, text=True, cwd=self.root, env=self._env(),
            timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"skyrelay {' '.join(args)} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}")
        return result

    def add_user(self, name: str, roles: Iterable[str]) -> tuple[str, str]:
        roles = list(roles)
        self.cli("user", "add", name, *[f"--role={r}" for r in roles], "--password-stdin",
                 stdin=password_of(name) + "\n")
        self.users[name] = roles
        self._added[name] = True
        return self.auth(name)

    def auth(self, name: str) -> tuple[str, str]:
        """(user, password) for `requests`' `auth=`."""
        return name, password_of(name)

    # -- the server -------------------------------------------------------------------------

    @property
    def import_url(self) -> str:
        return self.url + self.settings.get("importer.url_path", "/import")

    def start(self) -> "Server":
        """Add the users not added yet, then serve. stderr (the access log) is appended to,
        so a restart keeps what came before."""
        for name, roles in self.users.items():
            if not self._added.get(name):
                self.add_user(name, roles)
        self.stdout_path, self.stderr_path = self.root / "stdout.log", self.root / "stderr.log"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "ab") as err:
            self.process = subprocess.Popen(
                serve_command(self.config_path, self.workers, self.port), stdout=out,
                stderr=err, stdin=subprocess.DEVNULL, cwd=self.root, env=self._env(),
                start_new_session=True)
        try:
            self.url = self._wait_for_address()
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in self.stdout_path.read_text().splitlines():
                if line.startswith("listening on "):
                    return line.split()[-1]
            self._check_alive()
            time.sleep(0.05)
        raise RuntimeError(f"no 'listening on' line within {START_TIMEOUT_S}s:\n{self.log()}")

    def _wait_until_answering(self) -> None:
        """The socket is bound before workers boot; any HTTP answer means one serves."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/api/events", timeout=2)
                return
            except requests.ConnectionError:
                self._check_alive()
                time.sleep(0.05)
        raise RuntimeError(f"server not answering within {START_TIMEOUT_S}s:\n{self.log()}")

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"skyrelay serve exited with {self.process.returncode}:\n"
                               f"{self.log()}")

    def log(self) -> str:
        """What the server wrote to stderr (gunicorn and access lines)."""
        path = getattr(self, "stderr_path", None)
        return path.read_text(errors="replace") if path and path.exists() else ""

    def pids(self) -> list[int]:
        """The gunicorn master and its workers (for benchmarks reading memory use)."""
        if self.process is None:
            return []
        master, found = self.process.pid, [self.process.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                found.append(int(stat.parent.name))
        return found

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (gunicorn's graceful stop), then SIGKILL to the whole group if needed."""
        if self.process is not None:
            stop_server(self.process, timeout)

    # -- looking at what it stored ----------------------------------------------------------

    def open_site(self):
        """The site's storage, opened from the test process (SQLite WAL allows this while
        the server runs). Close it after use."""
        from skyrelay import config
        from model.site import open_site
        loaded = config.load(self.config_path, environ={})
        return open_site(loaded, migrate=False)

    def counts(self) -> dict[str, int]:
        site = self.open_site()
        try:
            return site.archive.counts()
        finally:
            site.close()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


@pytest.fixture
def server_factory(tmp_path):
    """`make(name, users={...}, settings={...}, workers=1)` → a started Server; all are
    stopped when the test ends."""
    started: list[Server] = []

    def make(name: str = "site", **kwargs) -> Server:
        server = Server(tmp_path / name, name=name, **kwargs)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()
