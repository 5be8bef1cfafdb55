"""`skyrelay storage migrate --to s3`: move a site's blobs from its local folder into the
object store its configuration names, verify every object, then switch the site to it.

The copying and verifying is `model.store.blob_migration`; this module checks that the
switch can be made before anything is copied, shows the progress and the outcome, and
rewrites `storage.backend` in the configuration file once every blob verified.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import click
import yaml

from exporter.progress import NoProgress
from exporter.report import human_bytes
from model.store import object_store
from model.store.blob_migration import BlobMigration, MigrationReport, totals
from model.store.object_store import ObjectStoreError
from model.store.s3_blobs import S3BlobStore
from skyrelay import config as config_module
from skyrelay.commands.context import pass_context
from skyrelay.settings import BY_KEY

BACKEND = "storage.backend"
FAILURES_SHOWN = 20

MIGRATE_HELP = """Copy every blob of this site into the S3 bucket its configuration names,
verify each object, then switch the site to it (storage.backend: s3).

\b
Before: add storage.bucket, storage.endpoint_url, storage.region, storage.prefix and the
keys (storage.access_key_id / storage.secret_access_key) to the site's configuration file,
with storage.backend still "local". The bucket must exist.

\b
Then, for every blob the database lists:
- an object already in the bucket with the right MD5 and size is left alone
  ("already there"); a wrong one is copied again;
- the local file is copied through the object store's own write path (same key and
  Content-MD5 as the server's); a local file whose MD5 is not the database's is reported
  and not copied;
- every object is read back from the bucket and its MD5 and size checked.

Only when every blob verified is storage.backend set to s3 in the configuration file
(the rest of the file kept as it was). Otherwise the exit status is 1, the failures are
listed, and nothing is switched: fix them and run the command again; it copies only what
is not yet in the bucket. The local files are left in place: remove them once satisfied
that the site serves every file from the bucket.

Stop `skyrelay serve` and syncs for the last run (a first run while serving copies the
bulk; the second copies only what arrived since)."""


class SwitchError(Exception):
    """storage.backend cannot be switched in the configuration file; the message says what
    to do instead."""


@click.group()
def storage():
    """Where this site keeps its blobs."""


@storage.command(help=MIGRATE_HELP)
@click.option("--to", "backend", type=click.Choice(["s3"]), required=True,
              help="The backend to move the blobs to.")
@click.option("--dry-run", is_flag=True,
              help="Verify what is in the bucket and list what would be copied; copy and "
                   "change nothing.")
@click.option("--format", "output", type=click.Choice(("text", "json")), default="text",
              show_default=True, help="Output format of the summary.")
@click.option("--progress/--no-progress", default=None,
              help="Show bytes done, rate and time left on stderr (default: when stderr is "
                   "a terminal).")
@pass_context
def migrate(ctx, backend, dry_run, output, progress):
    config = ctx.config
    if config[BACKEND] == backend:
        raise click.ClickException(f"this site already keeps its blobs in {backend} "
                                   f"({BACKEND} is {backend!r}): nothing to migrate")
    config_file = _config_file(ctx.config_path)
    try:
        switch = ConfigSwitch(config_file)
    except SwitchError as exc:
        raise click.ClickException(f"{exc}; nothing was copied or changed") from exc
    client = object_store.connect(config)
    try:
        object_store.check(client, config)
    except ObjectStoreError as exc:
        raise click.ClickException(f"object store: {exc}; nothing was copied or changed") \
            from exc
    site = ctx.site
    target = S3BlobStore(client, object_store.location(config), site.storage_path / "spool",
                         site.database)
    count, size = totals(site.database)
    show = sys.stderr.isatty() if progress is None else progress
    bar = _byte_bar(size, "checking" if dry_run else "migrating") if show else NoProgress()
    try:
        report = BlobMigration(site.database, site.blobs, target, bar.update).run(dry_run)
    finally:
        bar.close()
    switched = False
    if report.complete and not dry_run:
        switch.apply()
        switched = True
    _show(report, output, dry_run, switched, config, config_file, site.storage_path)
    if report.failures or report.stopped or not (dry_run or switched):
        sys.exit(1)


def _config_file(config_path: str | None) -> Path:
    """The file the site's configuration was read from, as `skyrelay.config.load` finds it."""
    return Path(config_path or os.environ.get("SKYRELAY_CONFIG")
                or config_module.DEFAULT_PATH)


def _byte_bar(total: int, name: str):
    from tqdm import tqdm
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                file=sys.stderr, dynamic_ncols=True)


# -- the outcome ----------------------------------------------------------------------------

def _show(report: MigrationReport, output: str, dry_run: bool, switched: bool, config,
          config_file: Path, storage_path: Path) -> None:
    if output == "json":
        click.echo(json.dumps(_summary(report, dry_run, switched), indent=2))
    else:
        _describe(report, dry_run, switched, config, config_file, storage_path)


def _summary(report: MigrationReport, dry_run: bool, switched: bool) -> dict:
    summary = {
        "blobs": report.blobs, "copied": report.copied, "already_there": report.already_there,
        "failed": len(report.failures), "not_tried": report.not_tried,
        "bytes": report.bytes_copied, "switched": switched, "dry_run": dry_run,
        "stopped": report.stopped,
        "failures": [{"sha256": f.sha256, "reason": f.reason} for f in report.failures]}
    if dry_run:
        summary["would_copy"] = [{"sha256": row.sha256, "size": row.size, "why": why}
                                 for row, why in report.would_copy]
        summary["bytes"] = sum(row.size for row, _ in report.would_copy)
    return summary


def _describe(report: MigrationReport, dry_run: bool, switched: bool, config,
              config_file: Path, storage_path: Path) -> None:
    bucket = object_store.location(config)
    where = f"bucket {bucket.bucket!r}" + (f" under {bucket.prefix!r}" if bucket.prefix else "")
    if dry_run:
        for row, why in report.would_copy:
            click.echo(f"would copy {row.sha256} ({row.size} bytes): {why}")
        would = sum(row.size for row, _ in report.would_copy)
        click.echo(f"dry run: would copy {len(report.would_copy)} of {report.blobs} blobs "
                   f"({human_bytes(would)}) to {where}, {report.already_there} already "
                   f"there; nothing was copied or changed")
    else:
        click.echo(f"copied {report.copied} of {report.blobs} blobs "
                   f"({human_bytes(report.bytes_copied)}) to {where}, "
                   f"{report.already_there} already there, {len(report.failures)} failed")
    _describe_failures(report)
    if switched:
        click.echo(f"every blob verified; {BACKEND} switched to s3 in {config_file}: "
                   "restart `skyrelay serve` to use the bucket")
        click.echo(f"the local copies (the two-level folders under {storage_path}) are left "
                   "in place: remove them once satisfied that the site serves every file "
                   "from the bucket (keep spool/ and uploads/)")
    elif not dry_run:
        click.echo(f"not switched: {BACKEND} stays local. Fix what is listed and run "
                   "`skyrelay storage migrate --to s3` again: it copies only what is not "
                   "yet in the bucket.", err=True)


def _describe_failures(report: MigrationReport) -> None:
    for failure in report.failures[:FAILURES_SHOWN]:
        click.echo(f"failed {failure.sha256}: {failure.reason}", err=True)
    if len(report.failures) > FAILURES_SHOWN:
        click.echo(f"... and {len(report.failures) - FAILURES_SHOWN} more failures "
                   "(--format json lists them all)", err=True)
    if report.stopped:
        click.echo(f"stopped early: {report.stopped}; {report.not_tried} blobs not tried",
                   err=True)


# -- switching the configuration file -------------------------------------------------------

class ConfigSwitch:
    """storage.backend set to s3 in the YAML file, every other byte of it kept (comments,
    order, flow or block style). Made before anything is copied, so that a file that cannot
    be switched stops the migration before it starts."""

    def __init__(self, path: Path):
        env_var = BY_KEY[BACKEND].env_var
        if env_var in os.environ:
            raise SwitchError(f"{BACKEND} is set by the environment variable {env_var}, "
                              "which this command cannot switch: remove it (the "
                              "configuration file then decides) and run again")
        if not path.is_file():
            raise SwitchError(f"no configuration file {path}: put the storage.* settings "
                              "of the bucket in the site's configuration file (--config) "
                              "and run again")
        self.path = path
        self.text = path.read_text()
        self.switched_text = switched_yaml(self.text, path)

    def apply(self) -> None:
        """Replace the file at once (a crash leaves the old file or the new, never half)."""
        if self.path.read_text() != self.text:
            raise click.ClickException(f"{self.path} changed while the blobs were copied: "
                                       f"not switched; run again")
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".skyrelay-")
        try:
            with os.fdopen(handle, "w") as out:
                out.write(self.switched_text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, self.path.stat().st_mode & 0o7777)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def switched_yaml(text: str, path: Path) -> str:
    """`text` with storage.backend set to s3: its value replaced where it is written, or the
    key added to the `storage` mapping (or a `storage` section appended). The result is
    parsed back and must differ from the original in that one setting only."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        original = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SwitchError(f"{path}: not valid YAML: {exc}") from exc
    if root is None:
        edited = text + ("" if text.endswith("\n") or not text else "\n") + \
            "storage:\n  backend: s3\n"
    elif isinstance(root, yaml.MappingNode) and not root.flow_style:
        edited = _edited(text, root, path)
    else:
        raise SwitchError(f"{path}: cannot set {BACKEND} in this file automatically: "
                          "set it to s3 by hand once the migration verified every blob")
    expected = _unshared(original)
    if "storage.backend" in expected:
        expected["storage.backend"] = "s3"
    else:
        expected.setdefault("storage", {})["backend"] = "s3"
    if yaml.safe_load(edited) != expected:
        raise SwitchError(f"{path}: cannot set {BACKEND} in this file automatically (anchors, "
                          "tags or an unusual layout): set it to s3 by hand once the "
                          "migration verified every blob")
    return edited


def _unshared(value):
    """A copy in which no two places are one object (YAML anchors and aliases): changing
    the storage section of the copy must not change anything else."""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


def _edited(text: str, root: yaml.MappingNode, path: Path) -> str:
    storage_node = None
    for key, value in root.value:
        if key.value == BACKEND:                       # written as one dotted key
            return _replaced(text, value)
        if key.value == "storage":
            storage_node = value
    if storage_node is None:
        return text + ("" if text.endswith("\n") else "\n") + "storage:\n  backend: s3\n"
    if not isinstance(storage_node, yaml.MappingNode) or not storage_node.value:
        raise SwitchError(f"{path}: its storage section is not a mapping of settings")
    for key, value in storage_node.value:
        if key.value == "backend":
            return _replaced(text, value)
    if storage_node.flow_style:                        # storage: {path: …, bucket: …}
        at = storage_node.start_mark.index + 1
        return text[:at] + "backend: s3, " + text[at:]
    first_key = storage_node.value[0][0]
    at = first_key.start_mark.index - first_key.start_mark.column
    return text[:at] + " " * first_key.start_mark.column + "backend: s3\n" + text[at:]


def _replaced(text: str, value: yaml.Node) -> str:
    if not isinstance(value, yaml.ScalarNode):
        raise SwitchError(f"{BACKEND} is not a plain value")
    return text[:value.start_mark.index] + "s3" + text[value.end_mark.index:]
