"""A large upload into a served importer: throughput and the importer's peak memory.

Starts `skyrelay serve` (tests/server.py) in a temporary folder, generates SIZE bytes on the
fly (the client never holds them either), and uploads them to `POST /import/data/<id>/<md5>`
twice: as a raw chunked `application/octet-stream` body and as multipart field `file` (the
MeteorPi form), both streamed from a generator. Prints MiB/s and the peak resident memory
(VmHWM) of every gunicorn process. The importer should stay far below 150 MiB.

    PYTHONPATH=. python bench/upload_rss.py            # 2 GiB
    PYTHONPATH=. python bench/upload_rss.py --mib 256  # quicker
"""

import argparse
import hashlib
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.server import Server  # noqa: E402

BLOCK = 1024 * 1024
BOUNDARY = "skyrelay-bench-boundary"


def generate(mib: int):
    """Deterministic, incompressible-looking bytes, one fresh 1 MiB block at a time."""
    base = random.Random(42).randbytes(BLOCK)
    for n in range(mib):
        yield n.to_bytes(8, "big") + base[8:]


def md5_of_stream(mib: int) -> str:
    digest = hashlib.md5()
    for block in generate(mib):
        digest.update(block)
    return digest.hexdigest()


def multipart(mib: int):
    """The MeteorPi upload body (field `file`, filename `file`), streamed."""
    yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
           f"filename=\"file\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
    yield from generate(mib)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def peak_rss_mib(server: Server) -> dict[int, float]:
    """VmHWM (peak resident set) of the gunicorn master and each worker, in MiB."""
    peaks = {}
    for pid in server.pids():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return peaks


def upload(server: Server, mib: int, md5: str, how: str) -> float:
    url = f"{server.import_url}/data/{uuid.uuid4().hex}/{md5}"
    if how == "raw":
        body, content_type = generate(mib), "application/octet-stream"
    else:
        body, content_type = multipart(mib), f"multipart/form-data; boundary={BOUNDARY}"
    started = time.perf_counter()
    response = requests.post(url, data=body, headers={"Content-Type": content_type},
                             auth=server.auth("bench"), timeout=(10, 600))
    elapsed = time.perf_counter() - started
    answer = response.json()
    if response.status_code != 200 or answer.get("received") is not True:
        raise SystemExit(f"upload failed: {response.status_code} {answer}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=2048, help="upload size in MiB")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"computing the MD5 of {args.mib} MiB of generated data ...", flush=True)
    md5 = md5_of_stream(args.mib)
    with tempfile.TemporaryDirectory(prefix="skyrelay-bench-") as root:
        server = Server(Path(root), users={"bench": ["import"]}, workers=args.workers)
        with server:
            requests.get(server.url + "/api/events", timeout=10)  # workers fully booted
            print(f"importer at rest: peak RSS {_show(peak_rss_mib(server))}")
            for how in ("raw", "multipart"):
                elapsed = upload(server, args.mib, md5, how)
                print(f"{how:9} {args.mib} MiB in {elapsed:.1f} s = "
                      f"{args.mib / elapsed:.0f} MiB/s; peak RSS so far "
                      f"{_show(peak_rss_mib(server))}", flush=True)
            worst = max(peak_rss_mib(server).values())
            print(f"importer peak RSS: {worst:.1f} MiB (target < 150 MiB)")


def _show(peaks: dict[int, float]) -> str:
    return ", ".join(f"pid {pid}: {mib:.1f} MiB" for pid, mib in sorted(peaks.items()))


if __name__ == "__main__":
    main()
