"""The MD5 that trails behind a chunk's stream (`Digests.md5_behind`): in order, never reading
a buffer after it was refilled, caught up when the block ends, failures reported there."""

import hashlib
import os
import time

import pytest

from model.store.blobs import MD5_LAG, Digests


class SlowMd5:
    """A real MD5 that takes its time, so the helper thread really falls behind."""

    def __init__(self):
        self.real = hashlib.md5()

    def update(self, block) -> None:
        time.sleep(0.002)
        self.real.update(block)

    def hexdigest(self) -> str:
        return self.real.hexdigest()


def test_buffers_turned_as_write_chunk_does_are_hashed_before_they_are_refilled():
    data = os.urandom(40 * 1000 + 123)
    buffers = [memoryview(bytearray(1000)) for _ in range(MD5_LAG + 1)]
    digests = Digests(md5=SlowMd5())
    with digests.md5_behind():
        for turn, start in enumerate(range(0, len(data), 1000)):
            block = data[start:start + 1000]
            view = buffers[turn % len(buffers)][:len(block)]
            view[:] = block
            digests.update(view)
    assert digests.md5_hex() == hashlib.md5(data).hexdigest()
    assert digests.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    assert digests.offset == len(data)


def test_outside_the_block_the_md5_is_immediate_and_a_copy_goes_on_alone():
    digests = Digests()
    digests.update(b"abc")
    copy = digests.copy()
    copy.update(b"def")
    assert digests.md5_hex() == hashlib.md5(b"abc").hexdigest()
    assert copy.md5_hex() == hashlib.md5(b"abcdef").hexdigest()


def test_a_failure_on_the_helper_thread_is_raised_when_the_block_ends():
    class Broken:
        def update(self, block):
            raise ValueError("disk on fire")

    digests = Digests(md5=Broken())
    with pytest.raises(ValueError, match="disk on fire"):
        with digests.md5_behind():
            for _ in range(MD5_LAG + 3):       # more than the lag: puts must not hang
                digests.update(b"x" * 10)
