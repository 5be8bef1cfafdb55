"""Small blobs are written beside their final name (`ab/cd/.incoming-…`): the temporary
files must never show as blobs, and a crash's leftovers must be cleaned like those in tmp/."""

import hashlib
import os
import time

import pytest

from model.store.blobs import TooLarge
from model.store.local_blobs import SMALL_BLOB, LocalBlobStore


def test_small_and_large_writes_commit_and_discard(tmp_path):
    store = LocalBlobStore(tmp_path)
    for data in (b"", b"small", os.urandom(SMALL_BLOB + 10)):
        pending = store.write([data[:7], data[7:]], durable=False)
        assert pending.info.md5 == hashlib.md5(data).hexdigest()
        assert pending.info.size == len(data)
        assert [sha for sha, _ in store.list()] == []      # not yet a blob
        pending.commit()
        assert store.open(pending.info.sha256).read() == data
        store.delete(pending.info.sha256)
    discarded = store.write([b"gone"])
    discarded.discard()
    assert list(store.list()) == []
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_second_copy_keeps_one(tmp_path):
    store = LocalBlobStore(tmp_path)
    first, second = store.write([b"same"]), store.write([b"same"])
    first.commit()
    second.commit()
    assert [sha for sha, _ in store.list()] == [first.info.sha256]
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1


def test_too_large_small_write_keeps_nothing(tmp_path):
    store = LocalBlobStore(tmp_path)
    with pytest.raises(TooLarge):
        store.write([b"x" * 10], limit=5)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_stale_temporaries_beside_blobs_are_removed(tmp_path):
    store = LocalBlobStore(tmp_path)
    left = store.write([b"crashed before commit"])          # never committed nor discarded
    fresh = store.write([b"still being received"])
    old = time.time() - 3600
    for path in tmp_path.rglob(".incoming-*"):
        if path.read_bytes() == b"crashed before commit":
            os.utime(path, (old, old))
    assert store.remove_stale_temporaries(600) == 1
    assert list(store.list()) == []
    fresh.commit()
    assert [sha for sha, _ in store.list()] == [fresh.info.sha256]
    left.discard()
