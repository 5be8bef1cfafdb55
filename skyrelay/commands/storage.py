"""`skyrelay storage migrate --to s3`: move a site's blobs from its local folder into the
object store its configuration names, verify every object, then switch the site to it.

The copying and verifying is `model.store.blob_migration`, the rewrite of `storage.backend`
in the configuration file `skyrelay.config_switch`; this module checks that the switch can be
made before anything is copied, shows the progress and the outcome, and switches once every
blob verified.
"""

import json
import os
import sys
from pathlib import Path

import click

from exporter.progress import NoProgress
from exporter.report import human_bytes
from model.store import object_store, s3_blobs
from model.store.blob_migration import BlobMigration, MigrationReport, totals
from model.store.object_store import ObjectStoreError
from skyrelay import config as config_module
from skyrelay.commands.context import pass_context
from skyrelay.config_switch import BACKEND, ConfigSwitch, SwitchError

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
    site = ctx.site
    target = s3_blobs.open_store(config, site.storage_path / "spool", site.database)
    try:
        object_store.check(target.client, config)
    except ObjectStoreError as exc:
        raise click.ClickException(f"object store: {exc}; nothing was copied or changed") \
            from exc
    count, size = totals(site.database)
    show = sys.stderr.isatty() if progress is None else progress
    bar = _byte_bar(size, "checking" if dry_run else "migrating") if show else NoProgress()
    try:
        report = BlobMigration(site.database, site.blobs, target, bar.update).run(dry_run)
    finally:
        bar.close()
    switched = False
    if report.complete and not dry_run:
        try:
            switch.apply()
        except SwitchError as exc:
            raise click.ClickException(str(exc)) from exc
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
