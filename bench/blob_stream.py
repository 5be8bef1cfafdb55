"""Hash and store a large generated stream (default 1 GiB) and print throughput and peak memory.

Why: a site receives files of many GiB from cameras; storing one must cost bounded memory
(issue 2: peak RSS under 100 MiB for 1 GiB) and not much more time than hashing it. The bytes
are generated chunk by chunk and never held whole, so the peak RSS measured is the store's.

Passes over the same bytes:
  1. hashlib MD5 alone: the baseline (what reading the stream costs at the least), and
     MD5 + SHA-256 in one pass (what the store cannot do faster than);
  2. LocalBlobStore.write + commit: MD5 and SHA-256 in one pass, temp file, fsync, rename;
  3. Archive.stage_bytes on a SQLite site: the same plus its rows, as an upload takes.

    python bench/blob_stream.py [--size-mib 1024] [--dir /tmp]

Not part of the test suite: figures are printed, never asserted by a timed test. The exit
status is 1 if peak RSS went over the target.
"""

import argparse
import hashlib
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.site_kit import open_test_site  # noqa: E402
from model.store.blobs import CHUNK  # noqa: E402
from model.store.local_blobs import LocalBlobStore  # noqa: E402

MIB = 1024 * 1024
RSS_TARGET_MIB = 100


BLOCK = random.Random(2015).randbytes(CHUNK)


def generated(size: int) -> Iterator[bytes]:
    """`size` pseudo-random bytes in CHUNK pieces, each chunk distinct (a counter in front of
    one random block), made as they are consumed; the same bytes on every call."""
    for index, start in enumerate(range(0, size, CHUNK)):
        chunk = index.to_bytes(8, "big") + BLOCK[8:]
        yield chunk[:size - start]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed(label: str, size: int, work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    rate = size / MIB / seconds
    print(f"{label:<44} {rate:8.1f} MiB/s  ({seconds:6.2f} s)", flush=True)
    return rate, result


def md5_baseline(size: int) -> str:
    digest = hashlib.md5()
    for chunk in generated(size):
        digest.update(chunk)
    return digest.hexdigest()


def both_hashes(size: int) -> str:
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    for chunk in generated(size):
        md5.update(chunk)
        sha256.update(chunk)
    return sha256.hexdigest()


def store_pass(folder: Path, size: int):
    store = LocalBlobStore(folder / "store")
    with store.write(generated(size)) as pending:
        pending.commit()
    return pending.info


def stage_pass(folder: Path, size: int, md5: str):
    site = open_test_site(f"sqlite:///{folder}/site.db", folder / "blobs")
    try:
        return site.archive.stage_bytes("0" * 32, md5, generated(size))
    finally:
        site.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024,
                        help="size of the generated stream in MiB (default 1024)")
    parser.add_argument("--dir", default=None, help="folder for the temporary stores")
    args = parser.parse_args()
    size = args.size_mib * MIB
    folder = Path(tempfile.mkdtemp(prefix="skyrelay-bench-", dir=args.dir))
    print(f"stream: {args.size_mib} MiB in {CHUNK // 1024} KiB chunks; "
          f"RSS after imports {peak_rss_mib():.1f} MiB", flush=True)
    try:
        md5_rate, md5 = timed("hashlib md5 alone (baseline)", size, lambda: md5_baseline(size))
        timed("hashlib md5+sha256, one pass (the floor)", size, lambda: both_hashes(size))
        store_rate, info = timed("LocalBlobStore.write+commit (md5+sha256)", size,
                                 lambda: store_pass(folder, size))
        assert info.md5 == md5 and info.size == size, "the store hashed other bytes"
        shutil.rmtree(folder / "store")
        stage_rate, staged = timed("Archive.stage_bytes (SQLite site)", size,
                                   lambda: stage_pass(folder, size, md5))
        assert staged.received, staged.message
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    peak = peak_rss_mib()
    print(f"store / md5 baseline: {store_rate / md5_rate:.2f}; "
          f"stage / md5 baseline: {stage_rate / md5_rate:.2f}")
    verdict = "OK" if peak < RSS_TARGET_MIB else "OVER TARGET"
    print(f"peak RSS: {peak:.1f} MiB (target < {RSS_TARGET_MIB} MiB): {verdict}")
    return 0 if peak < RSS_TARGET_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
