"""Baseline: a version 1 sync between two real sites on loopback.

Site A holds N events of F files of S bytes each (default 1000 × 2 × 4 KiB); site B runs
`skyrelay serve`. The sync runs in this process (so that HTTP requests are counted on the
client side, in the transport); site A is filled in a child process first so that the peak
RSS printed is the sync's, not the fill's. Prints entities/s, bytes/s, HTTP requests per
entity and peak RSS: the figures the batched protocol (version 2) is compared against.

    python bench/sync_v1.py [--events 1000] [--files 2] [--size 4096] [--workers 2]
"""

import argparse
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.site_kit import sync_settings
from exporter.sync import Syncer  # noqa: E402
from model.archive.sample import SampleWriter  # noqa: E402
from model.export.targets import Targets  # noqa: E402
from skyrelay.sites import LocalSite  # noqa: E402


def fill(folder: Path, events: int, files: int, size: int) -> None:
    site = LocalSite(folder, "a").open()
    try:
        SampleWriter(site.archive, seed=1000, file_size=size).fill(
            cameras=1, events_per_camera=events, files_per_event=files,
            standalone_per_camera=0)
    finally:
        site.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--files", type=int, default=2, help="files per event")
    parser.add_argument("--size", type=int, default=4096, help="bytes per file")
    parser.add_argument("--workers", type=int, default=2, help="importer gunicorn workers")
    parser.add_argument("--fill", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:
        return fill(Path(args.fill), args.events, args.files, args.size)

    root = Path(tempfile.mkdtemp(prefix="skyrelay-bench-"))
    try:
        started = time.monotonic()
        subprocess.run([sys.executable, __file__, "--fill", str(root / "a"), "--events",
                        str(args.events), "--files", str(args.files), "--size", str(args.size)],
                       check=True)
        print(f"filled site a: {args.events} events × {args.files} files × {args.size} B "
              f"in {time.monotonic() - started:.1f} s")
        password = secrets.token_urlsafe(12)
        a, b = LocalSite(root / "a", "a"), LocalSite(root / "b", "b")
        site_b = b.open()
        site_b.users.add("bench", password, ["import"])
        site_b.close()
        with b.start(workers=args.workers):
            site_a = a.open()
            Targets(site_a.database).add("b", b.import_url, "bench", password, protocol="v1")
            report = Syncer(site_a, sync_settings(timeout_s=60)).run(["b"])
            site_a.close()
            held = b.open()
            counts = held.archive.counts()
            held.close()
        entities = report.total("sent") + report.total("already_present")
        seconds = report.seconds
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(report.summary())
        print(f"entities        {entities} ({report.total('failed')} failed)")
        print(f"entities/s      {entities / seconds:.1f}")
        print(f"file bytes/s    {report.total('bytes') / seconds / 1024:.1f} KiB/s "
              f"({report.total('bytes')} bytes in {seconds:.1f} s)")
        print(f"requests/entity {report.total('requests') / max(entities, 1):.2f} "
              f"({report.total('requests')} HTTP requests)")
        print(f"peak RSS        {peak_mib:.1f} MiB (exporter process)")
        print(f"site b holds    {counts}")
        if not report.ok:
            sys.exit(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
