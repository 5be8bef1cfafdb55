"""`skyrelay storage migrate --to s3`, run as the real program against a real S3 server
(SeaweedFS): a SQLite site with real data moves into a bucket, every object byte-identical,
and the configuration file is switched only when every blob verified."""

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from model.site import open_site
from model.store import schema
from skyrelay import config as config_module
from skyrelay.config_switch import SwitchError, switched_yaml
from tests import bundle_kit as kit
from tests.site_kit import open_test_site

REPO = Path(__file__).resolve().parents[2]
PREFIX = "site/"
LARGE = 17 * 1024 * 1024   # above the S3 store's part size: sent in parts, never over itself


class MigratingSite:
    """A site folder (config.yaml, var/site.db, var/blobs) on the local backend whose
    configuration already names a bucket of the test's object store."""

    def __init__(self, root: Path, object_store, bucket: str):
        self.root, self.object_store, self.bucket = root, object_store, bucket
        self.config = root / "config.yaml"
        settings = object_store.settings(bucket, PREFIX)
        self.config_text = (
            "# this site's configuration: kept as written by the migration\n"
            "site: {name: test}\n"
            "database: {url: 'sqlite:///var/site.db'}\n"
            "storage:\n"
            "  backend: local   # becomes s3\n"
            "  path: var/blobs\n"
            + "".join(f"  {key.split('.', 1)[1]}: '{value}'\n" for key, value in
                      settings.items() if key != "storage.backend"))
        self.config.write_text(self.config_text)

    def open_local(self):
        return open_test_site(f"sqlite:///{self.root}/var/site.db", self.root / "var/blobs")

    def open_configured(self):
        """The site as its configuration file now describes it."""
        return open_site(config_module.load(self.config))

    def run(self, *args, ok=True, env=None):
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SKYRELAY_")}
        environ.update(PYTHONPATH=str(REPO), **(env or {}))
        result = subprocess.run(
            [sys.executable, "-m", "skyrelay", "--config", str(self.config), "storage",
             "migrate", *args], capture_output=True, text=True, timeout=300, env=environ,
            cwd=self.root.parent, stdin=subprocess.DEVNULL)
        assert (result.returncode == 0) == ok, (result.stdout, result.stderr)
        return result

    def migrate_json(self, *args, ok=True) -> dict:
        return json.loads(self.run("--to", "s3", "--format", "json", *args, ok=ok).stdout)

    def backend(self) -> str:
        return yaml.safe_load(self.config.read_text())["storage"]["backend"]

    def unswitch(self) -> None:
        """The configuration as before the migration: to run it again."""
        self.config.write_text(self.config_text)

    # -- the blobs ------------------------------------------------------------------------

    def rows(self) -> dict[str, tuple[str, int]]:
        site = self.open_local()
        try:
            with site.database.reading() as conn:
                return {row.sha256: (row.md5, row.size) for row in conn.execute(
                    select(schema.blobs.c.sha256, schema.blobs.c.md5, schema.blobs.c.size))}
        finally:
            site.close()

    def local_path(self, sha256: str) -> Path:
        return self.root / "var/blobs" / sha256[:2] / sha256[2:4] / sha256

    def key(self, sha256: str) -> str:
        return f"{PREFIX}blobs/{sha256}"

    def object_bytes(self, sha256: str) -> bytes:
        return self.object_store.client().get_object(Bucket=self.bucket,
                                                     Key=self.key(sha256))["Body"].read()

    def object_keys(self) -> set[str]:
        pages = self.object_store.client().get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket)
        return {item["Key"] for page in pages for item in page.get("Contents", ())}

    def put_object(self, sha256: str, data: bytes) -> None:
        self.object_store.client().put_object(Bucket=self.bucket, Key=self.key(sha256),
                                              Body=data)

    def assert_every_object_identical(self) -> None:
        rows = self.rows()
        assert {self.key(sha256) for sha256 in rows} <= self.object_keys()
        for sha256 in rows:
            assert self.object_bytes(sha256) == self.local_path(sha256).read_bytes(), sha256


def stage_blob(site, data: bytes, name: str) -> None:
    """A blob row of the archive API's own making: staged bytes no record claims yet."""
    file_id = hashlib.md5(name.encode()).hexdigest()
    assert site.archive.stage_bytes(file_id, hashlib.md5(data).hexdigest(),
                                    io.BytesIO(data)).received


@pytest.fixture
def migrating(tmp_path, object_store):
    """A site with 1 status, 3 events and 7 files (small blobs) and one staged blob of a
    little over 1 MiB (the blob store's streamed path)."""
    root = tmp_path / "site"
    root.mkdir()
    made = MigratingSite(root, object_store, object_store.new_bucket())
    site = made.open_local()
    kit.fill(site.archive, events=3)
    stage_blob(site, os.urandom(1024 * 1024 + 11), "streamed")
    made.before = kit.snapshot(site)
    site.close()
    return made


def test_migrate_copies_every_blob_verifies_it_and_switches_the_site(migrating):
    rows = migrating.rows()
    result = migrating.run("--to", "s3")
    assert f"copied {len(rows)} of {len(rows)} blobs" in result.stdout
    assert "switched to s3" in result.stdout and "left in place" in result.stdout

    migrating.assert_every_object_identical()
    assert migrating.backend() == "s3"
    text = migrating.config.read_text()
    assert text == migrating.config_text.replace("backend: local", "backend: s3")
    site = migrating.open_configured()
    try:
        assert site.settings["storage.backend"] == "s3"
        assert kit.snapshot(site) == migrating.before          # every file read from S3
        for sha256, (md5, size) in rows.items():
            with site.blobs.open(sha256) as stream:
                body = stream.read()
            assert (hashlib.md5(body).hexdigest(), len(body)) == (md5, size)
    finally:
        site.close()
    # The local copies stay until the admin removes them.
    assert all(migrating.local_path(sha256).is_file() for sha256 in rows)

    migrating.unswitch()
    again = migrating.migrate_json()
    assert (again["copied"], again["already_there"], again["failed"], again["bytes"],
            again["switched"]) == (0, len(rows), 0, 0, True)
    assert migrating.backend() == "s3"


def test_a_wrong_or_missing_object_is_copied_again(migrating):
    site = migrating.open_local()
    large = os.urandom(LARGE)
    stage_blob(site, large, "large")
    site.close()
    rows = migrating.rows()
    first = migrating.migrate_json()
    assert (first["copied"], first["bytes"]) == (len(rows), sum(s for _, s in rows.values()))
    migrating.unswitch()

    large_sha = hashlib.sha256(large).hexdigest()
    small_sha, missing_sha = sorted(sha for sha in rows if sha != large_sha)[:2]
    migrating.put_object(large_sha, b"not the large blob")
    migrating.put_object(small_sha, b"garbled" + migrating.local_path(small_sha).read_bytes())
    migrating.object_store.client().delete_object(Bucket=migrating.bucket,
                                                  Key=migrating.key(missing_sha))
    again = migrating.migrate_json()
    assert (again["copied"], again["already_there"], again["failed"], again["switched"]) == \
        (3, len(rows) - 3, 0, True)
    assert again["bytes"] == sum(rows[sha][1] for sha in (large_sha, small_sha, missing_sha))
    migrating.assert_every_object_identical()


def test_a_local_file_with_the_wrong_bytes_is_reported_not_copied_and_nothing_switched(
        migrating):
    rows = migrating.rows()
    bad = sorted(rows)[0]
    path = migrating.local_path(bad)
    good = path.read_bytes()
    path.write_bytes(bytes([good[0] ^ 1]) + good[1:])

    result = migrating.run("--to", "s3", ok=False)
    assert f"copied {len(rows) - 1} of {len(rows)} blobs" in result.stdout
    assert f"failed {bad}: the local file's MD5 is" in result.stderr
    assert "not switched" in result.stderr and "run `skyrelay storage migrate" in result.stderr
    assert migrating.config.read_text() == migrating.config_text
    assert migrating.key(bad) not in migrating.object_keys()

    path.write_bytes(good)
    fixed = migrating.migrate_json()
    assert (fixed["copied"], fixed["already_there"], fixed["switched"]) == \
        (1, len(rows) - 1, True)
    migrating.assert_every_object_identical()


def test_a_missing_bucket_is_named_and_nothing_changes(migrating):
    migrating.config_text = migrating.config_text.replace(migrating.bucket, "t-no-such-bucket")
    migrating.config.write_text(migrating.config_text)
    result = migrating.run("--to", "s3", ok=False)
    assert "storage.bucket" in result.stderr and "t-no-such-bucket" in result.stderr
    assert "nothing was copied or changed" in result.stderr
    assert migrating.config.read_text() == migrating.config_text


def test_a_dry_run_lists_what_would_be_copied_and_changes_nothing(migrating):
    rows = migrating.rows()
    listed = migrating.run("--to", "s3", "--dry-run")
    assert sorted(line.split()[2] for line in listed.stdout.splitlines()
                  if line.startswith("would copy ")) == sorted(rows)
    assert "nothing was copied or changed" in listed.stdout
    summary = migrating.migrate_json("--dry-run")
    assert (summary["copied"], summary["already_there"], summary["failed"],
            summary["switched"], summary["dry_run"]) == (0, 0, 0, False, True)
    assert summary["bytes"] == sum(size for _, size in rows.values())
    assert {entry["sha256"] for entry in summary["would_copy"]} == set(rows)
    assert migrating.object_keys() == set()
    assert migrating.config.read_text() == migrating.config_text


def test_a_site_already_on_s3_and_other_backends_are_refused(migrating):
    refused = migrating.run("--to", "local", ok=False)
    assert "'local' is not 's3'" in refused.stderr or "invalid choice" in refused.stderr.lower()
    migrating.config.write_text(migrating.config_text.replace("backend: local",
                                                              "backend: s3"))
    already = migrating.run("--to", "s3", ok=False)
    assert "already keeps its blobs in s3" in already.stderr


def test_a_backend_from_the_environment_is_refused_before_copying(migrating):
    result = migrating.run("--to", "s3", ok=False, env={"SKYRELAY_STORAGE_BACKEND": "local"})
    assert "SKYRELAY_STORAGE_BACKEND" in result.stderr
    assert migrating.object_keys() == set()


# -- the configuration file's one change ----------------------------------------------------

@pytest.mark.parametrize("before, after", [
    ("storage:\n  backend: local\n  bucket: b\n", "storage:\n  backend: s3\n  bucket: b\n"),
    ("storage: {backend: 'local', bucket: b}  # note\n",
     "storage: {backend: s3, bucket: b}  # note\n"),
    ("# top\nstorage:\n    bucket: b  # the bucket\nsite: {name: x}\n",
     "# top\nstorage:\n    backend: s3\n    bucket: b  # the bucket\nsite: {name: x}\n"),
    ("storage: {path: var/blobs, bucket: b}\n",
     "storage: {backend: s3, path: var/blobs, bucket: b}\n"),
    ("storage.backend: local\nstorage.bucket: b\n", "storage.backend: s3\nstorage.bucket: b\n"),
    ("site: {name: x}", "site: {name: x}\nstorage:\n  backend: s3\n"),
    ("", "storage:\n  backend: s3\n"),
])
def test_the_switch_changes_storage_backend_and_nothing_else(before, after):
    assert switched_yaml(before, Path("config.yaml")) == after


@pytest.mark.parametrize("text", [
    "base: &base {backend: local}\nstorage: *base\n",   # the anchor is shared
    "[1, 2]\n",
    "storage: [a]\n",
])
def test_a_file_that_cannot_be_switched_safely_is_refused(text):
    with pytest.raises(SwitchError):
        switched_yaml(text, Path("config.yaml"))
