"""`skyrelay gc`: remove unreferenced blobs and expired staged bytes."""

import click

from skyrelay.commands.context import pass_context


@click.command()
@click.option("--grace", type=click.IntRange(min=0), default=None, metavar="SECONDS",
              help="Keep unreferenced blobs younger than this (default: gc.grace_s).")
@click.option("--dry-run", is_flag=True, help="Report what would be removed; remove nothing.")
@pass_context
def gc(ctx, grace, dry_run):
    """Remove blobs no record uses and staged bytes no record claimed in time."""
    grace = ctx.config["gc.grace_s"] if grace is None else grace
    report = ctx.site.archive.gc(grace, ctx.config["importer.staged_ttl_s"], dry_run)
    uploads_expired = 0 if dry_run else ctx.site.uploads.expire(grace)
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {report.blobs_removed} blobs ({report.bytes_freed} bytes), "
               f"{report.staged_expired} expired staged uploads, "
               f"{report.temporaries_removed} stale temporary files")
    if uploads_expired:
        click.echo(f"removed {uploads_expired} expired resumable uploads")
