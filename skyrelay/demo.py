"""`skyrelay demo`: two sites on loopback, real data replicated from one to the other, every
byte checked.

Site A is filled with generated data (cameras, statuses, events with PNG frames, standalone
files); site B gets an import user; A gets B as export target; a sync runs with progress;
then every file is read back from B's read API and its MD5 compared with A's.
"""

import hashlib
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests

from exporter.sync import Syncer, SyncSettings
from model.archive.sample import Generated, SampleWriter
from skyrelay.sites import LocalSite


@dataclass
class Verification:
    events_found: int = 0
    files_matched: int = 0
    bytes_checked: int = 0
    problems: list = None

    def __post_init__(self):
        self.problems = [] if self.problems is None else self.problems


def verify(url: str, auth: tuple[str, str], generated: Generated) -> Verification:
    """Read every event and file back from the receiving site; compare MD5s."""
    result = Verification()
    with requests.Session() as session:
        session.auth = auth
        for event in generated.events:
            response = session.get(f"{url}/api/events/{event.event_id}", timeout=30)
            if response.status_code == 200 and response.json()["event_id"] == event.event_id:
                result.events_found += 1
            else:
                result.problems.append(f"event {event.event_id}: HTTP {response.status_code}")
        for record in generated.all_file_records():
            response = session.get(f"{url}/api/files/{record.file_id}/data", timeout=30)
            digest = hashlib.md5(response.content).hexdigest()
            if response.status_code == 200 and digest == record.md5:
                result.files_matched += 1
                result.bytes_checked += len(response.content)
            else:
                result.problems.append(f"file {record.file_id}: HTTP {response.status_code}, "
                                       f"MD5 {digest}, expected {record.md5}")
    return result


def run_demo(root: Path, echo: Callable[[str], None], progress: bool) -> bool:
    """The whole demo; True when every byte arrived."""
    if root.exists():
        shutil.rmtree(root)
    a, b = LocalSite(root / "a", "a"), LocalSite(root / "b", "b")
    password = secrets.token_urlsafe(16)
    with a, b:
        site_a, site_b = a.open(), b.open()
        try:
            echo(f"site a: {a.root}, site b: {b.root}")
            generated = SampleWriter(site_a.archive, seed=2015).fill(
                cameras=3, events_per_camera=8, files_per_event=2, standalone_per_camera=3)
            echo(f"filled a: {len(generated.statuses)} cameras, {len(generated.events)} events, "
                 f"{len(generated.all_file_records())} files, {generated.file_bytes} bytes")
            site_b.users.add("demo-import", password, ["import", "user"])
            a.start()
            b.start()
            echo(f"serving a at {a.url}, b at {b.url}")
            site_a.targets.add("b", b.import_url, "demo-import", password)
            report = Syncer(site_a, SyncSettings.from_config(a.config),
                            progress=progress).run(["b"])
            for line in (t.line() for t in report.targets):
                echo(line)
            echo(report.summary())
            checked = verify(b.url, ("demo-import", password), generated)
        finally:
            site_a.close()
            site_b.close()
    for problem in checked.problems[:10]:
        echo(f"MISMATCH {problem}")
    ok = report.ok and not checked.problems
    echo(f"demo {'OK' if ok else 'FAILED'}: {checked.events_found}/{len(generated.events)} "
         f"events and {checked.files_matched}/{len(generated.all_file_records())} files on b, "
         f"{checked.bytes_checked} bytes with matching MD5; both sites stopped")
    return ok
