"""One measured sync, run by bench/replicate.py as a process of its own: it imports only
what `skyrelay sync` needs (no benchmark code), syncs one target and prints the report and
its own peak RSS and CPU time as one JSON line.

    python bench/sync_child.py CONFIG TARGET
"""

import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporter.sync import Syncer, SyncSettings  # noqa: E402
from model.site import open_site  # noqa: E402
from skyrelay import config as config_module, heap  # noqa: E402


def peak_rss_mib() -> float:
    """This process's own peak RSS. Not getrusage's ru_maxrss: Linux carries that across
    exec from the parent (here the benchmark, larger than any sync), so every sync
    reported the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(config_path: str, target: str) -> None:
    heap.settle_after_start()                   # as `skyrelay` starts (skyrelay.cli.main)
    config = config_module.load(config_path, environ={})
    site = open_site(config, migrate=False)    # migrated when it was filled
    report = Syncer(site, SyncSettings.from_config(config)).run([target])
    site.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"ok": report.ok, "seconds": report.seconds,
                      "sent": report.total("sent"), "failed": report.total("failed"),
                      "bytes": report.total("bytes"), "problem": report.targets[0].problem,
                      "rss_mib": peak_rss_mib(),
                      "cpu_s": usage.ru_utime + usage.ru_stime}))
    heap.skip_last_collection()                 # as `skyrelay` ends


if __name__ == "__main__":
    main(*sys.argv[1:])
