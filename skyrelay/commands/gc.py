"""`skyrelay gc`: remove unreferenced blobs, expired staged bytes and uploads, and the
temporary files of writes that never ended. `--dry-run` reports by the same rules."""

import click

from model.store.object_store import ObjectStoreError
from skyrelay.commands.context import domain_errors, pass_context


@click.command()
@click.option("--grace", type=click.IntRange(min=0), default=None, metavar="SECONDS",
              help="Keep unreferenced blobs and temporary files younger than this "
                   "(default: gc.grace_s).")
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
@pass_context
@domain_errors(ObjectStoreError)
def gc(ctx, grace, dry_run):
    """Remove blobs no record uses and staged bytes no record claimed in time."""
    grace = ctx.config["gc.grace_s"] if grace is None else grace
    report = ctx.site.archive.gc(grace, ctx.config["importer.staged_ttl_s"], dry_run)
    uploads_expired = ctx.site.uploads.expire(grace, dry_run)
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {report.blobs_removed} blobs ({report.bytes_freed} bytes), "
               f"{report.staged_expired} expired staged uploads, "
               f"{report.temporaries_removed} stale temporary files "
               f"({report.temporary_bytes} bytes)")
    if uploads_expired:
        click.echo(f"{verb} {uploads_expired} expired resumable uploads")
