"""`skyrelay sync [--target NAME] [--every SECONDS | --schedule] [--progress/--no-progress]`."""

import signal
import sys
import threading

import click

from model.export.targets import TargetError


def register(cli: click.Group) -> None:
    from skyrelay.cli import domain_errors, pass_context

    @cli.command()
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
        from exporter import scheduler
        from exporter.sync import Syncer, SyncSettings, new_trace_id
        if every and schedule:
            raise click.UsageError("--every and --schedule exclude each other")
        times = None
        if schedule:
            try:
                expression = scheduler.check_cron(ctx.config["exporter.schedule"])
            except scheduler.ScheduleError as exc:
                raise click.ClickException(str(exc)) from exc
            times = scheduler.cron_times(expression)
        elif every:
            times = scheduler.every(every)
        progress = sys.stderr.isatty() if progress is None else progress
        syncer = Syncer(ctx.site, SyncSettings.from_config(ctx.config), progress=progress)

        def run_once():
            trace_id = new_trace_id()
            click.echo(f"sync starting, trace {trace_id}", err=True)
            report = syncer.run(list(names) or None, trace_id)
            for line in (t.line() for t in report.targets):
                click.echo(line, err=True)
            click.echo(report.summary())
            return report

        if times is None:
            if not run_once().ok:
                sys.exit(1)
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            scheduler.run_repeatedly(times, run_once, stop)
        except KeyboardInterrupt:
            pass
        click.echo("sync loop stopped", err=True)
