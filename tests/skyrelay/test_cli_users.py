"""The real `skyrelay` program, run as a subprocess in a temporary folder: users, gc, version,
configuration errors. Passwords go in through stdin or the environment and never come out."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.site_kit import open_test_site
from model.store.local_blobs import LocalBlobStore
from skyrelay import __version__

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


@pytest.fixture
def cli(tmp_path):
    """`cli(*args, input=None, env=None, config=None)` runs `python -m skyrelay --config …`
    with the working directory elsewhere than the config file, so relative paths are seen
    to follow the config file."""
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    config = site_dir / "config.yaml"
    config.write_text("site: {name: test}\n"
                      "database: {url: 'sqlite:///var/site.db'}\n"
                      "storage: {path: var/blobs}\n")
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()

    def run(*args, input=None, env=None, config_path=config):
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SKYRELAY_")}
        environ.update(PYTHONPATH=str(REPO), **(env or {}))
        prefix = [] if config_path is None else ["--config", str(config_path)]
        return subprocess.run([sys.executable, "-m", "skyrelay", *prefix, *args],
                              input=input, capture_output=True, text=True, timeout=60,
                              cwd=workdir, env=environ, stdin=None if input else
                              subprocess.DEVNULL)
    run.site_dir, run.config, run.workdir = site_dir, config, workdir
    return run


def add_user(cli, name="alice", *roles, password=PASSWORD):
    role_args = [arg for role in (roles or ("import",)) for arg in ("--role", role)]
    return cli("user", "add", name, *role_args, "--password-stdin", input=password + "\n")


def users_in(cli) -> list[str]:
    listed = cli("user", "list")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.splitlines()


def authenticates(cli, name: str, password: str) -> bool:
    site = open_test_site(f"sqlite:///{cli.site_dir}/var/site.db", cli.site_dir / "var/blobs",
                     migrate=False)
    try:
        return site.users.authenticate(name, password) is not None
    finally:
        site.close()


def test_version():
    done = subprocess.run([sys.executable, "-m", "skyrelay", "--version"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0
    assert done.stdout.strip() == f"skyrelay, version {__version__}"


def test_help_needs_no_database(cli):
    done = cli("--help")
    assert done.returncode == 0 and "user" in done.stdout and "gc" in done.stdout
    assert not (cli.site_dir / "var").exists()


def test_add_and_list_users_never_shows_the_password(cli):
    added = add_user(cli, "alice", "import", "user")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added user alice (import, user)"
    by_env = cli("user", "add", "bob", "--role", "camera_admin",
                 env={"SKYRELAY_PASSWORD": "another password"})
    assert by_env.returncode == 0, by_env.stderr
    assert users_in(cli) == ["alice\timport user", "bob\tcamera_admin"]
    assert (cli.site_dir / "var" / "site.db").exists(), "relative to the config file"
    assert not (cli.workdir / "var").exists()
    outputs = added.stdout + added.stderr + by_env.stdout + by_env.stderr + \
        cli("user", "list").stdout + cli("config").stdout
    assert PASSWORD not in outputs and "another password" not in outputs
    assert "scrypt" not in outputs, "not even the hash"
    assert authenticates(cli, "alice", PASSWORD) and authenticates(cli, "bob", "another password")


def test_duplicate_name_is_refused_and_changes_nothing(cli):
    add_user(cli, "alice", "import")
    again = add_user(cli, "alice", "camera_admin", password="a different password")
    assert again.returncode == 1
    assert "Error: user 'alice' exists already" in again.stderr
    assert users_in(cli) == ["alice\timport"]
    assert authenticates(cli, "alice", PASSWORD)
    assert not authenticates(cli, "alice", "a different password")


def test_short_password_is_refused(cli):
    done = add_user(cli, "carol", password="short")
    assert done.returncode == 1 and "password: at least 8 characters" in done.stderr
    assert "short" not in done.stderr.replace("password: at least", "")
    assert users_in(cli) == []


def test_unknown_role_is_refused(cli):
    done = add_user(cli, "dave", "boss")
    assert done.returncode == 2
    assert "'boss' is not one of" in done.stderr and "camera_admin" in done.stderr
    assert users_in(cli) == []


def test_password_never_from_argv(cli):
    done = cli("user", "add", "erin", "--role", "user", "--password", PASSWORD)
    assert done.returncode == 2 and "No such option" in done.stderr
    without = cli("user", "add", "erin", "--role", "user")
    assert without.returncode == 2 and "no password" in without.stderr
    assert users_in(cli) == []


def test_remove_and_change_roles(cli):
    add_user(cli, "alice", "import")
    unknown = cli("user", "remove", "nobody")
    assert unknown.returncode == 1 and "no user 'nobody'" in unknown.stderr
    no_roles = cli("user", "roles", "nobody", "--role", "user")
    assert no_roles.returncode == 1 and "no user 'nobody'" in no_roles.stderr
    changed = cli("user", "roles", "alice", "--role", "user", "--role", "camera_admin")
    assert changed.returncode == 0 and users_in(cli) == ["alice\tcamera_admin user"]
    removed = cli("user", "remove", "alice")
    assert removed.returncode == 0 and removed.stdout.strip() == "removed user alice"
    assert users_in(cli) == []


def test_gc_dry_run_reports_and_gc_removes_an_old_orphan_blob(cli):
    empty = cli("gc", "--dry-run")
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.strip() == ("would remove 0 blobs (0 bytes), 0 expired staged uploads, "
                                    "0 stale temporary files (0 bytes)")
    store = LocalBlobStore(cli.site_dir / "var" / "blobs")
    with store.write([b"left behind by a crash"]) as pending:
        pending.commit()  # a blob with no row, as a crash before the row insert leaves
    orphan = Path(store.folder_and_path(pending.info.sha256)[1])
    half_an_hour_ago = time.time() - 1800
    os.utime(orphan, (half_an_hour_ago, half_an_hour_ago))

    assert cli("gc", "--dry-run").stdout.startswith("would remove 0 blobs")
    assert cli("gc").stdout.startswith("removed 0 blobs"), "within the default grace of 1 h"
    assert orphan.exists()
    assert cli("gc", "--dry-run", "--grace", "60").stdout.startswith("would remove 1 blobs")
    assert orphan.exists(), "a dry run removes nothing"
    done = cli("gc", "--grace", "60")
    assert done.returncode == 0 and done.stdout.startswith("removed 1 blobs")
    assert not orphan.exists()
    assert cli("gc", "--grace", "-1").returncode == 2


@pytest.mark.parametrize("text, words", [
    ("importer: {port: -1}\n", "'importer.port'"),
    ("importer: {port: abc}\n", "'importer.port'"),
    ("importr: {port: 1}\n", "'importr.port'"),
])
def test_bad_configuration_exits_naming_the_key(cli, text, words):
    cli.config.write_text(text)
    done = cli("user", "list")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: configuration:") and words in done.stderr
    assert "Traceback" not in done.stderr
    assert not (cli.site_dir / "var").exists(), "nothing was created"


def test_bad_environment_value_and_missing_file(cli):
    done = cli("gc", "--dry-run", env={"SKYRELAY_IMPORTER_PORT": "eighty"})
    assert done.returncode == 1 and "SKYRELAY_IMPORTER_PORT" in done.stderr
    missing = cli("user", "list", config_path=cli.site_dir / "typo.yaml")
    assert missing.returncode == 1 and "no such configuration file" in missing.stderr


def test_config_command_masks_database_passwords(cli):
    cli.config.write_text("database: {url: 'postgresql+psycopg://sky:s3cr3t-pw@127.0.0.1/x'}\n")
    shown = cli("config")
    assert shown.returncode == 0, shown.stderr
    assert "s3cr3t-pw" not in shown.stdout
    assert "postgresql+psycopg://sky:***@127.0.0.1/x" in shown.stdout
