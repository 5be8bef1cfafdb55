"""`skyrelay bundle create | ingest`: ship data between sites with no network link."""

import getpass

import click

from exporter.bundle_writer import BundleWriteError, write_bundle
from model.archive.selection import Selection
from model.bundles.ingest import IngestLimits
from model.bundles.jobs import run_ingest_job
from model.export.targets import TargetError, make_filter
from model.ops.traces import TraceIdError, check_trace_id, new_trace_id
from skyrelay.commands.context import domain_errors, pass_context


@click.group()
def bundle():
    """Write the archive to a tar bundle, or ingest one (all or nothing)."""


@bundle.command("create")
@click.argument("out", metavar="OUT.tar")
@click.option("--gzip", "use_gzip", is_flag=True, help="Compress the bundle with gzip.")
@click.option("--camera", "cameras", multiple=True, metavar="ID",
              help="Only this camera's data; repeat for several.")
@click.option("--event-type", "event_types", multiple=True, metavar="TYPE",
              help="Only events of this type (standalone files are left out); repeat for "
                   "several.")
@click.option("--after", metavar="TIME",
              help="Only data at or after TIME (ms since 1970, or ISO 8601 such as "
                   "2026-01-25T16:54:50Z).")
@click.option("--before", metavar="TIME", help="Only data before TIME (same forms).")
@click.option("--target", "target_name", metavar="NAME",
              help="Exactly what export target NAME receives (its filter); instead of the "
                   "filter options.")
@pass_context
@domain_errors(BundleWriteError, TargetError, OSError)
def create(ctx, out, use_gzip, cameras, event_types, after, before, target_name):
    """Write the archive (or the part the filters select) to OUT.tar ("-": stdout)."""
    if target_name and (cameras or event_types or after or before):
        raise click.UsageError("--target takes that target's filter; give either --target "
                               "or filter options")
    chosen = (ctx.site.targets.get(target_name).filter if target_name
              else make_filter(cameras, event_types, after, before))
    selection = Selection(chosen.camera_ids, chosen.event_types, chosen.after_ms,
                          chosen.before_ms)
    report = write_bundle(ctx.site.archive, out, selection, gzip=use_gzip)
    click.echo(f"wrote {out}: {report.statuses} statuses, {report.events} events, "
               f"{report.files} files ({report.data_bytes} bytes of data)",
               err=out == "-")


@bundle.command("ingest")
@click.argument("path", metavar="IN.tar", type=click.Path(exists=True, dir_okay=False))
@click.option("--trace-id", metavar="ID", help="Record under this trace ID (default: new).")
@pass_context
@domain_errors(TraceIdError)
def ingest(ctx, path, trace_id):
    """Ingest the bundle IN.tar: all of it, or (exit status 1) nothing."""
    site = ctx.site
    jobs = site.jobs
    jobs.fail_unfinished_on_start()
    trace_id = check_trace_id(trace_id) if trace_id else new_trace_id()
    job = jobs.create(f"local:{getpass.getuser()}", trace_id, bundle_path=path)
    outcome = run_ingest_job(site, job, "cli", IngestLimits.from_settings(ctx.config))
    where = f"job {job.job_id}, trace {trace_id}"
    if outcome.report is None:
        raise click.ClickException(f"bundle refused: {outcome.job.exception} ({where})")
    r = outcome.report
    click.echo(f"ingested {path}: {r.statuses} statuses, {r.events} events, {r.files} files;"
               f" {r.stored} stored, {r.held} already held, {r.conflicts} conflicts "
               f"({where})")
    if r.conflicts:
        click.echo(f"conflicts: see `skyrelay status {trace_id} --history`", err=True)

