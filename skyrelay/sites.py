"""Sites on this machine for the demo and the benchmarks: each a folder with its own
config.yaml, SQLite database and blob folder, served by a real `skyrelay serve` subprocess
on a free loopback port.

The composition root may use every part; the sites themselves are the real program.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from model.site import Site, open_site
from skyrelay import config as config_module

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30


def config_tree(settings: Mapping[str, Any]) -> dict:
    """{"importer.port": 1} → {"importer": {"port": 1}}: the shape of config.yaml."""
    tree: dict = {}
    for key, value in settings.items():
        section, _, option = key.partition(".")
        tree.setdefault(section, {})[option] = value
    return tree


def serve_env() -> dict:
    """The environment of a `skyrelay` subprocess: this checkout first on the path, output
    unbuffered (its `listening on` line is read), no inherited SKYRELAY_CONFIG."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    env.pop("SKYRELAY_CONFIG", None)
    return env


def serve_command(config_path: Path, workers: int, port: int = 0) -> list[str]:
    return [sys.executable, "-m", "skyrelay", "--config", str(config_path), "serve",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


def stop_server(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL to the whole group if needed."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


class LocalSite:
    def __init__(self, root: Path, name: str, settings: dict | None = None):
        self.root = Path(root)
        self.name = name
        self.root.mkdir(parents=True, exist_ok=True)
        tree = config_tree({"site.name": name, "database.url": "sqlite:///site.db",
                            "storage.path": "blobs", **(settings or {})})
        self.config_path = self.root / "config.yaml"
        self.config_path.write_text(json.dumps(tree, indent=1))   # JSON is valid YAML
        self.config = config_module.load(self.config_path, environ={})
        self.process: subprocess.Popen | None = None
        self.url: str | None = None

    def open(self) -> Site:
        """This site's storage (migrated); close it after use."""
        return open_site(self.config)

    @property
    def import_url(self) -> str:
        return self.url + self.config["importer.url_path"]

    def start(self, workers: int = 1, port: int = 0) -> "LocalSite":
        """`skyrelay serve` on `port` (0: a free one); returns once it answers HTTP."""
        self.open().close()                       # migrate before the server starts
        log = open(self.root / "serve.log", "wb")
        self.process = subprocess.Popen(
            serve_command(self.config_path, workers, port), stdout=subprocess.PIPE,
            stderr=log, stdin=subprocess.DEVNULL, cwd=self.root, env=serve_env(),
            start_new_session=True, text=True)
        log.close()
        try:
            self.url = self._read_address()
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_address(self) -> str:
        for line in self.process.stdout:           # blocks until serve prints or exits
            if line.startswith("listening on "):
                return line.split()[-1].strip()
        raise RuntimeError(f"site {self.name}: `skyrelay serve` exited "
                           f"({self.process.wait()}); see {self.root / 'serve.log'}")

    def _wait_until_answering(self) -> None:
        import requests
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/api/events", timeout=2)
                return
            except requests.ConnectionError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"site {self.name} does not answer; see {self.root / 'serve.log'}")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        """SIGKILL to the server and its workers at once: a crash, not a stop."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)
        self.process.stdout.close()

    def stop(self, timeout: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        stop_server(self.process, timeout)
        if self.process.stdout:
            self.process.stdout.close()

    def __enter__(self) -> "LocalSite":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
