"""Bundle throughput and memory: write a bundle of large files from site A, ingest it into
site B, print MB/s and the peak resident memory of each step (it must stay flat: file bytes
are streamed, never held). Run: PYTHONPATH=. python bench/bundles.py [--mb 512] [--files 4]"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FILL = """
import hashlib, random, sys
from model.protocol.entities import Status, Event
from tests.bundle_kit import FIXTURES
from tests.site_kit import open_test_site
site = open_test_site(sys.argv[1], sys.argv[2])
status = Status.from_json(FIXTURES["status"]["status"])
site.archive.add_status(status)
files, size = int(sys.argv[3]), int(sys.argv[4])
records = []
for n in range(files):
    block = random.Random(n).randbytes(1 << 20)   # 1 MiB that gzip cannot shrink
    md5 = hashlib.md5()
    for _ in range(size // len(block)):
        md5.update(block)
    file_id = "%032x" % (n + 1)
    chunks = (block for _ in range(size // len(block)))
    assert site.archive.stage_bytes(file_id, md5.hexdigest(), chunks).received
    records.append({"file_id": file_id, "camera_id": status.camera_id,
                    "status_id": status.status_id, "file_time": 1427891400000,
                    "mime_type": "video/mp4", "semantic_type": "meteorpi:video",
                    "file_size": size, "md5": md5.hexdigest(), "meta": []})
site.archive.import_event(Event.from_json({
    "event_id": "%032x" % 999, "camera_id": status.camera_id, "status_id": status.status_id,
    "event_time": 1427891400000, "event_type": "meteorpi:meteor", "files": records,
    "meta": []}))
"""


MEASURED = """
import resource, sys
from skyrelay.cli import cli
try:
    cli(sys.argv[1:], prog_name="skyrelay")
finally:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def run(cwd: Path, *args: str) -> tuple[float, int]:
    """Seconds and peak RSS (MiB) of one `skyrelay` command, in a process of its own."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, *args], cwd=cwd, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"skyrelay {' '.join(args)} failed: {done.stderr}")
    return elapsed, int(done.stderr.strip().splitlines()[-1]) // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=512, help="total MiB of file data")
    parser.add_argument("--files", type=int, default=4, help="number of files")
    parser.add_argument("--quick", action="store_true", help="64 MiB in 4 files")
    args = parser.parse_args()
    if args.quick:
        args.mb, args.files = 64, 4
    size = args.mb * 1024 * 1024 // args.files
    with tempfile.TemporaryDirectory(prefix="skyrelay-bench-") as root:
        a, b = Path(root, "a"), Path(root, "b")
        a.mkdir(), b.mkdir()
        subprocess.run([sys.executable, "-c", FILL, f"sqlite:///{a}/var/skyrelay.db",
                        str(a / "var/blobs"), str(args.files), str(size)], check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
        total_mb = args.files * size / 2 ** 20
        for gzip in (False, True):
            bundle = Path(root, "x.tar.gz" if gzip else "x.tar")
            flags = ["--gzip"] if gzip else []
            write_s, write_rss = run(a, "bundle", "create", str(bundle), *flags)
            (b / "var").exists() and subprocess.run(["rm", "-rf", str(b / "var")], check=True)
            read_s, read_rss = run(b, "bundle", "ingest", str(bundle))
            kind = "tar.gz" if gzip else "tar"
            print(f"{kind:7s} {total_mb:.0f} MiB in {args.files} files: "
                  f"create {total_mb / write_s:.0f} MiB/s, ingest {total_mb / read_s:.0f} MiB/s "
                  f"(bundle {bundle.stat().st_size / 2 ** 20:.0f} MiB); "
                  f"peak RSS create <= {write_rss} MiB, ingest <= {read_rss} MiB")


if __name__ == "__main__":
    main()
