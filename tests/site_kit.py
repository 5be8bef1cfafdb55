"""A site opened in a test from a database URL and a blob folder, every other setting at its
default (or as given, by its dotted key); and what a test needs to look at a site's blob store
whichever backend holds the blobs (a local folder, or an S3 bucket with a local spool)."""

import uuid
from pathlib import Path

import model.archive.archive
import model.archive.cleanup
import model.archive.rows
from typing import Any, Mapping

from exporter.sync import SyncSettings
from model.site import Site, open_site
from skyrelay import config as config_module


def open_test_site(database_url: str, storage_path: str | Path, migrate: bool = True,
                   with_settings: Mapping[str, Any] | None = None, **settings) -> Site:
    """`with_settings` by dotted key (e.g. a `blob_settings` fixture's), `settings` by keyword
    with "__" for "."."""
    config = config_module.from_values({"database.url": database_url,
                                        "storage.path": str(storage_path),
                                        **(with_settings or {}),
                                        **{key.replace("__", "."): value
                                           for key, value in settings.items()}})
    return open_site(config, migrate=migrate)


def sync_settings(**overrides) -> SyncSettings:
    """A sync's settings at their defaults, with `overrides` by field name."""
    return SyncSettings.from_config(config_module.from_values({}), **overrides)


def s3_settings(object_store, bucket: str, **overrides) -> dict[str, Any]:
    """Settings for blobs in `bucket` of a tests.object_store.ObjectStore, under a prefix of
    their own: tests sharing one bucket never see each other's objects."""
    return {**object_store.settings(bucket, prefix=f"t-{uuid.uuid4().hex[:12]}/"),
            **overrides}


def temp_folder(blobs) -> Path:
    """Where a blob store keeps this host's temporary files: the local store's `tmp/`, or the
    `tmp/` of an object store's spool."""
    return getattr(blobs, "spool", blobs).temp_dir


def temporaries(blobs) -> list[Path]:
    return sorted(temp_folder(blobs).iterdir())


def on_s3(blobs) -> bool:
    return hasattr(blobs, "ledger")


def partial_bytes(blobs, name: str) -> int:
    """How many bytes a resumable upload's partial holds: its file's size, or on S3 what its
    ledger counts (parts and tail)."""
    if on_s3(blobs):
        return blobs.ledger.load(name).received
    return blobs.partial(name).path.stat().st_size


def upload_leftovers(blobs) -> list[str]:
    """What the store holds of resumable uploads in the making: partial files; on S3, open
    multipart uploads and objects other than blobs (staging objects, tails)."""
    if not on_s3(blobs):
        return sorted(path.name for path in blobs.partial_folder.glob("*.part"))
    prefix = blobs.where.prefix
    objects = [key for key, _ in blobs.objects_under(prefix)
               if not key.startswith(blobs.where.key("blobs/"))]
    multipart = blobs.client.list_multipart_uploads(Bucket=blobs.bucket, Prefix=prefix)
    return sorted(objects + [f"multipart:{upload['Key']}"
                             for upload in multipart.get("Uploads", ())])


def blob_leftovers(site) -> dict:
    """What a refused bundle or upload must not leave, on either backend: rows, temporary
    files and files in this host's blob (or spool) folder, and the blobs the store lists."""
    blobs = site.archive.blobs
    local = getattr(blobs, "spool", blobs)
    return {"counts": site.archive.counts(),
            "tmp": sorted(path.name for path in temporaries(blobs)),
            "local_files": sorted(path.name for path in local.root.glob("??/??/*")),
            "blobs": sorted(sha for sha, _ in blobs.list())}


def advance_clock(monkeypatch, seconds: float) -> None:
    """The archive's clock (row times, gc's cutoffs) runs `seconds` ahead from now on."""
    real_now_ms = model.archive.archive.now_ms
    clock = lambda: real_now_ms() + int(seconds * 1000)  # noqa: E731
    for module in (model.archive.archive, model.archive.cleanup, model.archive.rows):
        monkeypatch.setattr(module, "now_ms", clock)
