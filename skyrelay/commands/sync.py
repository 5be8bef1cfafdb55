"""`skyrelay sync [--target NAME] [--every SECONDS | --schedule] [--progress/--no-progress]`."""

import functools
import signal
import sys
import threading

import click

from model.export.targets import TargetError
from model.ops.traces import new_trace_id
from skyrelay.commands.context import domain_errors, pass_context


@click.command()
@click.option("--target", "names", multiple=True, metavar="NAME",
              help="Sync only this target (repeat for several; default: every enabled "
                   "target).")
@click.option("--every", type=click.FloatRange(min=1), metavar="SECONDS",
              help="Sync again every SECONDS until stopped.")
@click.option("--schedule", is_flag=True,
              help="Sync at the times of exporter.schedule (cron) until stopped.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: when standard error is a terminal).")
@pass_context
@domain_errors(TargetError)
def sync(ctx, names, every, schedule, progress):
    """Send what the targets still need; exit 0 only if every entity tried arrived."""
    from exporter.sync import Syncer, SyncSettings
    times = _sync_times(ctx, every, schedule)
    progress = sys.stderr.isatty() if progress is None else progress
    syncer = Syncer(ctx.site, SyncSettings.from_config(ctx.config), progress=progress)
    run_once = functools.partial(_sync_once, syncer, list(names) or None)
    if times is None:
        if not run_once().ok:
            sys.exit(1)
        return
    _sync_until_stopped(times, run_once)


def _sync_times(ctx, every, schedule):
    """When to sync again: the cron schedule, a fixed period, or None for a single run."""
    from exporter import scheduler
    if every and schedule:
        raise click.UsageError("--every and --schedule exclude each other")
    if schedule:
        try:
            expression = scheduler.check_cron(ctx.config["exporter.schedule"])
        except scheduler.ScheduleError as exc:
            raise click.ClickException(str(exc)) from exc
        return scheduler.cron_times(expression)
    if every:
        return scheduler.every(every)
    return None


def _sync_once(syncer, names: list[str] | None):
    """One run under a new trace ID: a line per target on stderr, the summary on stdout."""
    trace_id = new_trace_id()
    click.echo(f"sync starting, trace {trace_id}", err=True)
    report = syncer.run(names, trace_id)
    for line in (t.line() for t in report.targets):
        click.echo(line, err=True)
    click.echo(report.summary())
    return report


def _sync_until_stopped(times, run_once) -> None:
    """Run at each of `times` until SIGTERM or Ctrl-C, which end the loop cleanly."""
    from exporter import scheduler
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        scheduler.run_repeatedly(times, run_once, stop)
    except KeyboardInterrupt:
        pass
    click.echo("sync loop stopped", err=True)
