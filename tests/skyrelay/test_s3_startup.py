"""`skyrelay` refuses to start on an object store it cannot use: a bucket that is not there,
a wrong secret key, an endpoint nobody answers at. `skyrelay serve` and an ordinary command
each exit non-zero with one line that names the setting to fix, and no traceback.
"""

import json
import subprocess
import sys

import pytest

from skyrelay.sites import config_tree, serve_command, serve_env
from tests.object_store import free_ports
from tests.site_kit import s3_settings

# A closed port refuses at once; the tries and back-off of the store's client stay short.
RUN_TIMEOUT = 60


def missing_bucket(settings: dict) -> tuple[dict, str]:
    return {**settings, "storage.bucket": settings["storage.bucket"] + "-missing"}, \
        "storage.bucket"


def wrong_secret_key(settings: dict) -> tuple[dict, str]:
    return {**settings, "storage.secret_access_key": "not-the-secret-key"}, \
        "storage.secret_access_key"


def unreachable_endpoint(settings: dict) -> tuple[dict, str]:
    [closed] = free_ports(1)
    return {**settings, "storage.endpoint_url": f"http://127.0.0.1:{closed}",
            "storage.timeout_s": 2.0}, "storage.endpoint_url"


COMMANDS = {"serve": None, "gc --dry-run": ["gc", "--dry-run"]}


@pytest.mark.parametrize("fault", [missing_bucket, wrong_secret_key, unreachable_endpoint],
                         ids=lambda fault: fault.__name__)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_command_on_an_unusable_store_exits_naming_the_setting(object_store, s3_bucket,
                                                                  tmp_path, fault, command):
    settings, named = fault(s3_settings(object_store, s3_bucket))
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(config_tree({
        "database.url": f"sqlite:///{tmp_path}/site.db", "storage.path": str(tmp_path / "blobs"),
        **settings})))
    argv = serve_command(config, workers=1) if COMMANDS[command] is None else \
        [sys.executable, "-m", "skyrelay", "--config", str(config), *COMMANDS[command]]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=serve_env(),
                          stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT)
    assert done.returncode != 0, done.stdout
    assert named in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert "listening on" not in done.stdout
    assert settings["storage.secret_access_key"] not in done.stderr, "the secret is not shown"
