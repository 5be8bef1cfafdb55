"""Replication, version 1 against version 2, on the same data between two real sites.

For each dataset it fills a site A, starts fresh importer sites (`skyrelay serve`, two
workers) on loopback and syncs with --protocol v1, then v2, each in a child process of its
own (`bench/sync_child.py`: what `skyrelay sync` runs, and its peak RSS is its own). It
prints, per run: wall time (the child process from start to exit, and the sync alone),
entities/s, MiB/s, HTTP requests per entity (counted in the importer's access log), peak
RSS and CPU time of the exporter and of the importer's workers; `rsync -a` of the same blob
folder after each v2 run (files only, the baseline); the in-process hashlib.md5 rate over
the same bytes (the physical limit); for large files the rate of writing and fsyncing as
many bytes on the same disk (the other limit: every received byte is made durable). Ratios,
not absolute times, are the headline.

Datasets: small (events × 2 files of 4 KiB), large (one file); without --quick also the
importer's peak RSS receiving a 4 GiB file and the exporter's peak RSS with 1,000 and with
100,000 pending entities.

    python bench/replicate.py --quick        # under a minute
    python bench/replicate.py                # the targets of issue 5 (several minutes)
"""

import argparse
import compileall
import hashlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model.archive.bulk_import import store_ready  # noqa: E402
from model.archive.staging import StagingBatch  # noqa: E402
from model.export.targets import Targets  # noqa: E402
from model.protocol.entities import Event, FileRecord, Status  # noqa: E402
from skyrelay.sites import LocalSite  # noqa: E402

MIB = 1024 * 1024
USER = "bench"


# -- datasets (written with the model's bulk paths: filling is not what is measured) -------

def _status(rng: random.Random) -> Status:
    return Status.from_json({"status_id": f"{rng.getrandbits(128):032x}", "camera_id": "cam1",
                             "valid_from": 0, "location": {"lat": 52.2, "long": 0.12},
                             "orientation": {"alt": 45.0, "az": 180.0}})


def _record(rng, status: Status, data_md5: str, size: int, when: int) -> FileRecord:
    return FileRecord.from_json({
        "file_id": f"{rng.getrandbits(128):032x}", "camera_id": "cam1",
        "status_id": status.status_id, "file_time": when, "mime_type": "image/png",
        "semantic_type": "meteorpi:triggers/image", "file_size": size, "md5": data_md5,
        "meta": [{"type": "number", "key": "meteorpi:exposure", "value": 0.04}]})


def fill_events(site, events: int, files: int, size: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    status = _status(rng)
    site.archive.add_status(status)
    staging, pending = StagingBatch(site.archive), []
    for n in range(events):
        records = []
        for _ in range(files):
            data = rng.randbytes(size)
            md5 = hashlib.md5(data).hexdigest()
            record = _record(rng, status, md5, size, n)
            staging.add(record.file_id, md5, [data])
            records.append(record)
        pending.append(Event(f"{rng.getrandbits(128):032x}", "cam1", status.status_id, n,
                             "meteorpi:meteor", tuple(records), ()))
        if len(pending) == 1000 or n == events - 1:
            staging.flush()
            assert len(store_ready(site.archive, pending)) == len(pending)
            pending = []


def fill_large(site, size: int, seed: int = 2) -> None:
    """One standalone file of `size` bytes, generated a block at a time (never in memory)."""
    rng = random.Random(seed)
    status = _status(rng)
    site.archive.add_status(status)
    base = rng.randbytes(MIB)
    blocks = (n.to_bytes(8, "big") + base[8:] for n in range(size // MIB))
    with site.archive.blobs.write(blocks) as pending:
        info = pending.info
        pending.commit()
    record = _record(rng, status, info.md5, size, 0)
    site.archive.stage_received([(record.file_id, info.md5, info)])
    site.archive.import_file(record)


# -- one measured sync, in a child process (bench/sync_child.py) ---------------------------

SYNC_CHILD = Path(__file__).with_name("sync_child.py")


@dataclass
class Result:
    label: str
    wall_s: float           # the child process, start to exit
    sync_s: float           # the sync alone
    entities: int
    data_bytes: int
    requests: int
    exporter_rss: float
    importer_rss: float
    exporter_cpu: float     # user + system seconds of the sync's process
    importer_cpu: float     # the same, of the importer's workers during the sync
    ok: bool
    problem: str | None = None

    def row(self) -> str:
        rate = self.entities / self.wall_s
        mibs = self.data_bytes / MIB / self.wall_s
        return (f"  {self.label:<9}{self.wall_s:8.2f} s ({self.sync_s:6.2f} s sync) "
                f"{rate:9.0f} entities/s {mibs:8.1f} MiB/s "
                f"{self.requests / max(self.entities, 1):7.3f} req/entity "
                f"{self.exporter_rss:7.1f} MiB exp {self.importer_rss:7.1f} MiB imp "
                f"CPU {self.exporter_cpu:5.2f} s exp {self.importer_cpu:5.2f} s imp"
                + ("" if self.ok else f"  FAILED: {self.problem}"))


def start_importer(root: Path, name: str, password: str) -> LocalSite:
    site = LocalSite(root / name, name)
    opened = site.open()
    opened.users.add(USER, password, ["import"])
    opened.close()
    return site.start(workers=2)


def gunicorn_pids(site: LocalSite) -> list[int]:
    master, found = site.process.pid, [site.process.pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def peak_rss_mib(pids: list[int]) -> float:
    peak = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return peak


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time so far of the processes `pids`, from /proc."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def access_lines(site: LocalSite) -> int:
    text = (site.root / "serve.log").read_text(errors="replace")
    return sum(" user=" in line and " trace=" in line for line in text.splitlines())


def measure(a: LocalSite, root: Path, label: str, protocol: str, entities: int,
            data_bytes: int) -> Result:
    password = secrets.token_urlsafe(12)
    importer = start_importer(root, f"{label}-{protocol}-{uuid.uuid4().hex[:6]}", password)
    try:
        site_a = a.open()
        Targets(site_a.database).add(importer.name, importer.import_url, USER, password,
                                     protocol)
        site_a.close()
        before, cpu_before = access_lines(importer), cpu_seconds(gunicorn_pids(importer))
        started = time.monotonic()
        child = subprocess.run([sys.executable, str(SYNC_CHILD), str(a.config_path),
                                importer.name], capture_output=True, text=True, check=True)
        wall = time.monotonic() - started
        out = json.loads(child.stdout.strip().splitlines()[-1])
        time.sleep(0.2)                           # the last access lines reach the log
        workers = gunicorn_pids(importer)
        return Result(protocol, wall, out["seconds"], entities, data_bytes,
                      access_lines(importer) - before, out["rss_mib"], peak_rss_mib(workers),
                      out["cpu_s"], cpu_seconds(workers) - cpu_before, out["ok"], out["problem"])
    finally:
        importer.stop()


def rsync_once(source: Path, root: Path) -> tuple[float, Path]:
    """Seconds of one `rsync -a` of the blob folder into a fresh folder, and that folder (kept
    until the dataset is done: removing files slows the next creations, see --keep)."""
    copy = root / f"rsync-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    subprocess.run(["rsync", "-a", f"{source}/", f"{copy}/"], check=True)
    return time.monotonic() - started, copy


def md5_rate(blob_root: Path) -> tuple[float, int]:
    """MiB/s of hashlib.md5 over the blob folder's bytes (read first, hashing timed alone)."""
    total, seconds = 0, 0.0
    for path in blob_root.glob("??/??/*"):
        digest = hashlib.md5()
        with open(path, "rb") as handle:
            while block := handle.read(8 * MIB):
                started = time.perf_counter()
                digest.update(block)
                seconds += time.perf_counter() - started
                total += len(block)
    return total / MIB / max(seconds, 1e-9), total


def durable_write_rate(root: Path, size: int) -> float:
    """MiB/s of writing `size` bytes to a new file on the bench's disk and fsyncing it: the
    importer must make every received byte durable before it counts, so for large files
    this, not MD5, can be the slower physical limit."""
    base, path = os.urandom(8 * MIB), root / f"disk-{uuid.uuid4().hex[:6]}"
    blocks = max(1, size // len(base))
    started = time.monotonic()
    with open(path, "wb", buffering=0) as out:
        for n in range(blocks):
            shift = 4096 * n + n + 1       # no two 4 KiB pages alike: nothing to deduplicate
            out.write(base[shift % len(base):] + base[:shift % len(base)])
        os.fsync(out.fileno())
    seconds = time.monotonic() - started
    path.unlink()
    return blocks * len(base) / MIB / seconds


def compile_bytecode() -> None:
    """Compile the project's modules, as `pip install` does for an installed package. Where
    PYTHONDONTWRITEBYTECODE is set (as in this machine's environment), a checkout's modules
    are otherwise compiled again by every process: 30-50 ms of each sync's start."""
    for package in ("model", "importer", "exporter", "skyrelay"):
        compileall.compile_dir(REPO / package, quiet=1)


# -- scenarios ------------------------------------------------------------------------------

def compare(root: Path, name: str, description: str, fill, entities: int,
            protocols=("v1", "v2"), v2_runs: int = 1) -> dict:
    """v1 once (its request count is what is compared, and it is slow); v2 `v2_runs` times,
    each into a fresh importer and each followed by one `rsync -a` of the same files, every
    run printed and the best of each kept. Taking turns puts both under the same conditions
    (this VM's disk and CPU speed drift over minutes), and best against best compares like
    with like."""
    a = LocalSite(root / f"a-{name}", f"a-{name}")
    site = a.open()
    fill(site)
    site.close()
    md5_mibs, data_bytes = md5_rate(a.root / "blobs")
    print(f"\n{name}: {description}: {entities} entities, {data_bytes / MIB:.1f} MiB of files")
    has_rsync = shutil.which("rsync") is not None
    results, rsyncs, copies = {}, [], []
    for protocol in protocols:
        runs = v2_runs if protocol == "v2" else 1
        for run in range(runs):
            result = measure(a, root, name, protocol, entities, data_bytes)
            if runs > 1:
                result.label = f"{protocol} {run + 1}/{runs}"
            print(result.row())
            if protocol not in results or result.wall_s < results[protocol].wall_s:
                results[protocol] = result
            if protocol == "v2" and has_rsync:
                seconds, copy = rsync_once(a.root / "blobs", root)
                rsyncs.append(seconds)
                copies.append(copy)
    for copy in copies:
        shutil.rmtree(copy, ignore_errors=True)
    if v2_runs > 1 and "v2" in results:
        print(f"  (v2: the best of {v2_runs} runs, {results['v2'].label}, is compared)")
    rsync = min(rsyncs) if rsyncs else None
    if rsync is None:
        print("  rsync -a  not installed: no files-only baseline (apt-get install rsync)")
    else:
        print(f"  rsync -a {rsync:8.2f} s {data_bytes / MIB / rsync:38.1f} MiB/s (files only, "
              f"best of {len(rsyncs)}: " + ", ".join(f"{r:.2f}" for r in rsyncs) + " s)")
    print(f"  md5      {md5_mibs:8.1f} MiB/s in-process hashlib.md5 over the same bytes")
    disk = None
    if data_bytes >= 256 * MIB:
        disk = durable_write_rate(root, min(data_bytes, 1024 * MIB))
        print(f"  disk     {disk:8.1f} MiB/s writing and fsyncing as many bytes (up to 1 GiB) "
              "on the same disk")
    return {"results": results, "rsync": rsync, "md5": md5_mibs, "disk": disk,
            "bytes": data_bytes}


def verdict(text: str, value: float, limit: float, better: str) -> None:
    met = value >= limit if better == "higher" else value <= limit
    gap = "" if met else f" (missed by {abs(value - limit) / limit:.0%})"
    print(f"  target {text}: {value:.2f} vs {limit:.2f} -> {'met' if met else 'MISSED'}{gap}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--events", type=int, help="events of 2 × 4 KiB files")
    parser.add_argument("--large-mib", type=int, help="size of the one large file")
    parser.add_argument("--runs", type=int, default=3,
                        help="version 2 runs per dataset, the best compared (default 3)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the bench folder (removing many files slows the file "
                             "system's next file creations for minutes: ext4 skips "
                             "recently freed inodes)")
    args = parser.parse_args()
    events = args.events or (500 if args.quick else 2000)
    large = args.large_mib or (128 if args.quick else 1024)
    compile_bytecode()
    root = Path(tempfile.mkdtemp(prefix="skyrelay-bench-", dir=os.environ.get("BENCH_DIR")))
    print(f"bench in {root} ({os.cpu_count()} CPUs){' --quick' if args.quick else ''}")
    try:
        small = compare(root, "small", f"{events} events × 2 files × 4 KiB",
                        lambda s: fill_events(s, events, 2, 4096), events, v2_runs=args.runs)
        v1, v2 = small["results"]["v1"], small["results"]["v2"]
        print("  ratios: v1/v2 requests "
              f"{v1.requests / max(v2.requests, 1):.1f}x, v2/rsync wall "
              + (f"{v2.wall_s / small['rsync']:.2f}x" if small["rsync"] else "n/a"))
        verdict("v1/v2 requests >= 20", v1.requests / max(v2.requests, 1), 20, "higher")
        if small["rsync"]:
            verdict("v2 wall / rsync wall <= 3", v2.wall_s / small["rsync"], 3, "lower")
        big = compare(root, "large", f"one file of {large} MiB",
                      lambda s: fill_large(s, large * MIB), 1, v2_runs=args.runs)
        v2 = big["results"]["v2"]
        ratio = big["bytes"] / MIB / v2.wall_s / big["md5"]
        print(f"  ratio: v2 end to end / md5 rate {ratio:.2f} "
              f"({big['bytes'] / MIB / v2.sync_s / big['md5']:.2f} counting the sync alone, "
              "without the interpreter's start)")
        if big["disk"]:
            print(f"  ratio: v2 end to end / durable disk write rate "
                  f"{big['bytes'] / MIB / v2.wall_s / big['disk']:.2f}")
        if large >= 1024:
            verdict("v2 end to end >= 0.6 x md5 rate", ratio, 0.6, "higher")
        else:
            print(f"  (the 0.6 x md5 target is for 1 GiB; at {large} MiB the fixed cost of "
                  "starting a sync dominates)")
        if not args.quick:
            memory_targets(root)
        else:
            print("\n(--quick: the 4 GiB importer RSS and 100,000-entity exporter RSS runs "
                  "are skipped; run without --quick)")
    finally:
        if args.keep:
            print(f"\nkept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def memory_targets(root: Path) -> None:
    huge = compare(root, "huge", "one file of 4 GiB (importer memory)",
                   lambda s: fill_large(s, 4096 * MIB, seed=3), 1, protocols=("v2",))
    verdict("importer peak RSS <= 150 MiB receiving 4 GiB",
            huge["results"]["v2"].importer_rss, 150, "lower")
    rss = {}
    for count in (1000, 100_000):
        run = compare(root, f"queue{count}", f"{count} pending events without files "
                      "(exporter memory)", lambda s, n=count: fill_events(s, n, 0, 0, seed=4),
                      count, protocols=("v2",))
        rss[count] = run["results"]["v2"].exporter_rss
    growth = rss[100_000] / rss[1000] - 1
    print(f"\nexporter peak RSS: {rss[1000]:.1f} MiB (1,000 pending) -> {rss[100_000]:.1f} MiB "
          f"(100,000 pending): {growth:+.0%}")
    verdict("exporter RSS growth <= 20%", growth * 100, 20, "lower")


if __name__ == "__main__":
    main()
