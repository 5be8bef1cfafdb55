"""Replication into an S3 object store: skyrelay's protocol v2 against boto3's own upload.

It starts its own SeaweedFS (tests/object_store.ObjectStore) on loopback and real
`skyrelay serve` importers (SQLite database, blobs in that store), and measures:

1. one large file (--large-mib, made once): an exporter site (SQLite, local blobs) syncing
   it with protocol v2 into an S3 importer (a `bench/sync_child.py` process, as in
   bench/replicate.py), against boto3 `upload_file` of the same file into the same store
   (a client made by model.store.object_store.connect; the default TransferConfig, and
   16 MiB parts as skyrelay's), and the in-process MD5 rate over the same bytes. Rounds
   alternate the order; every round's skyrelay/boto3 ratio is printed and the median is
   compared with the goal (>= 0.8);
2. many small files (events × 2 files × 4 KiB) synced into an S3 importer against a
   local-folder importer, rounds alternating; the ratio of the wall times;
3. the importer's peak RSS (VmHWM of the master and its worker, and their sum) receiving
   a --rss-gib file into S3 (goal <= 150 MiB).

Every measurement goes into a bucket of its own, dropped after it. The machine's load is
printed: on a 2-core machine, other work running skews the absolute numbers; the ratios
of measurements taken in turns are the headline.

    python bench/s3.py --quick          # 1 round, 256 MiB, 500 events, 1 GiB for RSS
    python bench/s3.py                  # 3 rounds, 1 GiB, 2,000 events, 4 GiB for RSS
"""

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from boto3.s3.transfer import TransferConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.replicate import (MIB, SYNC_CHILD, USER, compile_bytecode, cpu_seconds,  # noqa: E402
                             fill_events, fill_large, gunicorn_pids, md5_rate, verdict)
from model.export.targets import Targets  # noqa: E402
from model.store.object_store import connect  # noqa: E402
from model.store.s3_parts import SMALLEST_PART as SKYRELAY_PART  # noqa: E402
from skyrelay import config as config_module  # noqa: E402
from skyrelay.sites import LocalSite  # noqa: E402
from tests.object_store import ObjectStore  # noqa: E402


# -- the object store's buckets ------------------------------------------------------------

def store_client(store: ObjectStore, bucket: str):
    """A boto3 client made as the importer makes its own (model.store.object_store.connect),
    from the same settings with every other one at its default."""
    return connect(config_module.from_values(store.settings(bucket)))


def drop_bucket(store: ObjectStore, bucket: str) -> None:
    """Empty and delete `bucket` (its SeaweedFS collection and disk space go with it)."""
    client = store.client()
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", ()):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                          UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        for start in range(0, len(keys), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys[start:start + 1000]})
    client.delete_bucket(Bucket=bucket)


# -- one sync into a fresh importer ---------------------------------------------------------

@dataclass
class Sync:
    wall_s: float          # the sync's process, start to exit
    sync_s: float          # the sync alone, as its report counts it
    exporter_cpu: float
    importer_cpu: float
    importer_peaks: dict[int, float]     # pid -> VmHWM (MiB), the master first
    store_cpu: float = 0.0                # SeaweedFS's, during the sync

    def row(self, label: str, data_bytes: int) -> str:
        return (f"  {label:<22}{self.wall_s:8.2f} s ({self.sync_s:7.2f} s sync) "
                f"{data_bytes / MIB / self.sync_s:8.1f} MiB/s  CPU {self.exporter_cpu:5.2f} s "
                f"exp {self.importer_cpu:5.2f} s imp"
                + (f" {self.store_cpu:5.2f} s store" if self.store_cpu else ""))


def start_importer(root: Path, settings: dict, workers: int) -> tuple[LocalSite, str]:
    name = f"imp-{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(12)
    site = LocalSite(root / name, name, settings)
    opened = site.open()
    opened.users.add(USER, password, ["import"])
    opened.close()
    return site.start(workers=workers), password


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sync_into(exporter: LocalSite, root: Path, settings: dict, workers: int) -> Sync:
    """Start an importer with `settings`, sync everything `exporter` holds into it in a child
    process (bench/sync_child.py), and stop it; its folder is removed after."""
    importer, password = start_importer(root, settings, workers)
    try:
        site = exporter.open()
        Targets(site.database).add(importer.name, importer.import_url, USER, password, "v2")
        site.close()
        cpu_before = cpu_seconds(gunicorn_pids(importer))
        started = time.monotonic()
        child = subprocess.run([sys.executable, str(SYNC_CHILD), str(exporter.config_path),
                                importer.name], capture_output=True, text=True, check=True)
        wall = time.monotonic() - started
        out = json.loads(child.stdout.strip().splitlines()[-1])
        if not out["ok"] or out["failed"]:
            raise SystemExit(f"sync failed: {out['problem']} (see {importer.root}/serve.log)")
        pids = gunicorn_pids(importer)
        return Sync(wall, out["seconds"], out["cpu_s"], cpu_seconds(pids) - cpu_before,
                    {pid: vm_hwm_mib(pid) for pid in pids})
    finally:
        importer.stop()
        shutil.rmtree(importer.root, ignore_errors=True)


def sync_into_s3(store: ObjectStore, exporter: LocalSite, root: Path, workers: int) -> Sync:
    bucket = store.new_bucket()
    try:
        store_before = store_cpu(store)
        sync = sync_into(exporter, root, store.settings(bucket), workers)
        sync.store_cpu = store_cpu(store) - store_before
        return sync
    finally:
        drop_bucket(store, bucket)


def store_cpu(store: ObjectStore) -> float:
    """CPU seconds so far of SeaweedFS (one `weed server` process): on a 2-core machine the
    store, the importer and its hashing share the same cores."""
    return cpu_seconds([store.process.pid])


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def boto3_upload(store: ObjectStore, path: Path, config: TransferConfig) -> tuple[float, str]:
    """Seconds of boto3's `upload_file` of `path` into a fresh bucket, and the CPU time it
    and the store took."""
    bucket = store.new_bucket()
    try:
        client = store_client(store, bucket)
        cpu, store_before = own_cpu(), store_cpu(store)
        started = time.monotonic()
        client.upload_file(str(path), bucket, f"bench/{uuid.uuid4().hex}", Config=config)
        seconds = time.monotonic() - started
        return seconds, (f"CPU {own_cpu() - cpu:5.2f} s boto3 "
                         f"{store_cpu(store) - store_before:5.2f} s store")
    finally:
        drop_bucket(store, bucket)


def exporter_site(root: Path, name: str, fill) -> LocalSite:
    site = LocalSite(root / name, name)
    opened = site.open()
    fill(opened)
    opened.close()
    return site


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} CPUs"


# -- 1. one large file ----------------------------------------------------------------------

def large_file(store: ObjectStore, root: Path, mib: int, rounds: int, workers: int) -> None:
    exporter = exporter_site(root, "a-large", lambda s: fill_large(s, mib * MIB))
    (path,) = (exporter.root / "blobs").glob("??/??/*")
    size = path.stat().st_size
    md5_mibs, _ = md5_rate(exporter.root / "blobs")
    print(f"\n1. one file of {size / MIB:.0f} MiB into S3, {rounds} round(s)")
    boto3_configs = {"boto3 default": TransferConfig(),
                     "boto3 16 MiB parts": TransferConfig(multipart_chunksize=SKYRELAY_PART)}
    mibs: dict[str, list[float]] = {name: [] for name in ("skyrelay v2", *boto3_configs)}
    walls: list[float] = []
    for n in range(rounds):
        order = ["skyrelay v2", *boto3_configs]
        if n % 2:
            order.reverse()
        print(f" round {n + 1}/{rounds} ({load()})")
        for name in order:
            if name == "skyrelay v2":
                sync = sync_into_s3(store, exporter, root, workers)
                print(sync.row(name, size))
                mibs[name].append(size / MIB / sync.sync_s)
                walls.append(size / MIB / sync.wall_s)
            else:
                seconds, cpu = boto3_upload(store, path, boto3_configs[name])
                mibs[name].append(size / MIB / seconds)
                print(f"  {name:<22}{seconds:8.2f} s {'':15}{mibs[name][-1]:8.1f} MiB/s  "
                      + cpu)
        print("  ratio skyrelay/boto3: " + ", ".join(
            f"{mibs['skyrelay v2'][-1] / mibs[name][-1]:.2f} vs {name[6:]}"
            for name in boto3_configs))
    median = {name: statistics.median(values) for name, values in mibs.items()}
    print(f" median over {rounds} round(s): " + ", ".join(
        f"{name} {value:.1f} MiB/s" for name, value in median.items())
        + f"; skyrelay end to end (with the sync process's start) "
          f"{statistics.median(walls):.1f} MiB/s")
    print(f"  md5                   {md5_mibs:8.1f} MiB/s in-process hashlib.md5 over the "
          "same bytes")
    for name in boto3_configs:
        ratios = [ours / theirs for ours, theirs in zip(mibs["skyrelay v2"], mibs[name])]
        verdict(f"skyrelay/{name} >= 0.8 (median of per-round ratios)",
                statistics.median(ratios), 0.8, "higher")
    print(f"  skyrelay / md5 rate: {median['skyrelay v2'] / md5_mibs:.2f}")
    shutil.rmtree(exporter.root, ignore_errors=True)


# -- 2. many small files --------------------------------------------------------------------

def small_files(store: ObjectStore, root: Path, events: int, rounds: int, workers: int) -> None:
    exporter = exporter_site(root, "a-small", lambda s: fill_events(s, events, 2, 4096))
    data_bytes = events * 2 * 4096
    print(f"\n2. {events} events × 2 files × 4 KiB into S3 and into a local folder, "
          f"{rounds} round(s)")
    walls: dict[str, list[float]] = {"s3": [], "local": []}
    for n in range(rounds):
        order = ["s3", "local"] if n % 2 == 0 else ["local", "s3"]
        print(f" round {n + 1}/{rounds} ({load()})")
        for kind in order:
            if kind == "s3":
                sync = sync_into_s3(store, exporter, root, workers)
            else:
                sync = sync_into(exporter, root, {}, workers)
            walls[kind].append(sync.wall_s)
            print(sync.row(f"into {kind}", data_bytes)
                  + f"  {events / sync.wall_s:7.0f} events/s")
        print(f"  ratio s3/local wall: {walls['s3'][-1] / walls['local'][-1]:.2f}")
    ratios = [s3 / local for s3, local in zip(walls["s3"], walls["local"])]
    print(f" median over {rounds} round(s): s3 {statistics.median(walls['s3']):.2f} s, "
          f"local {statistics.median(walls['local']):.2f} s, ratio s3/local "
          f"{statistics.median(ratios):.2f}")
    shutil.rmtree(exporter.root, ignore_errors=True)


# -- 3. the importer's memory ---------------------------------------------------------------

def importer_memory(store: ObjectStore, root: Path, gib: float, workers: int) -> None:
    mib = int(gib * 1024)
    exporter = exporter_site(root, "a-huge", lambda s: fill_large(s, mib * MIB, seed=3))
    print(f"\n3. importer peak RSS receiving one file of {mib} MiB into S3 ({load()})")
    sync = sync_into_s3(store, exporter, root, workers)
    print(sync.row("skyrelay v2", mib * MIB))
    (master, *workers_) = sync.importer_peaks.items()
    print(f"  VmHWM: master {master[1]:.1f} MiB, "
          + ", ".join(f"worker {peak:.1f} MiB" for _, peak in workers_)
          + f"; sum {sum(sync.importer_peaks.values()):.1f} MiB (counts twice the pages a "
            "worker shares with the master it was forked from)")
    verdict("worker peak RSS <= 150 MiB", max(peak for _, peak in workers_), 150, "lower")
    verdict("sum of the server's peak RSS <= 150 MiB", sum(sync.importer_peaks.values()),
            150, "lower")
    shutil.rmtree(exporter.root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 round, a 256 MiB file, 500 events, 1 GiB for the RSS run")
    parser.add_argument("--large-mib", type=int, help="size of the large file (1024)")
    parser.add_argument("--events", type=int, help="events of 2 × 4 KiB files (2000)")
    parser.add_argument("--rounds", type=int, help="rounds of each comparison (3)")
    parser.add_argument("--rss-gib", type=float, help="file size of the RSS run (4)")
    parser.add_argument("--no-rss", action="store_true", help="skip the RSS run")
    parser.add_argument("--workers", type=int, default=1,
                        help="the importer's gunicorn workers (1)")
    args = parser.parse_args()
    large = args.large_mib or (256 if args.quick else 1024)
    events = args.events or (500 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 3)
    rss_gib = args.rss_gib or (1 if args.quick else 4)
    compile_bytecode()
    root = Path(tempfile.mkdtemp(prefix="skyrelay-bench-s3-",
                                 dir=os.environ.get("BENCH_DIR")))
    # SeaweedFS as a deployment would run it (its own volume growth, 1 GiB volumes), not as
    # the tests do (one small volume per bucket, which writes one part at a time).
    store = ObjectStore(volume_mib=1024, volumes_per_bucket=7).start()
    print(f"bench in {root}, SeaweedFS at {store.endpoint_url}, importer workers "
          f"{args.workers}{' --quick' if args.quick else ''}; {load()} at start (the "
          "sync, its importer, SeaweedFS and any other work on this machine share its cores)")
    try:
        large_file(store, root, large, rounds, args.workers)
        small_files(store, root, events, rounds, args.workers)
        if not args.no_rss:
            importer_memory(store, root, rss_gib, args.workers)
        print(f"\n{load()} at the end")
    finally:
        store.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
