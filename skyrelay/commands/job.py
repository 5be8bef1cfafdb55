"""`skyrelay job show | set`: look at a bundle ingest, or unstick one (camera_admin's tool)."""

import json

import click

from model.ops.jobs import FAILED, OK, TASKS, JobError
from skyrelay.commands.context import domain_errors, pass_context


@click.group()
def job():
    """Bundle ingest jobs (what GET /get_state answers)."""


@job.command("show")
@click.argument("job_id", type=int)
@pass_context
def show(ctx, job_id):
    """Print job JOB_ID as JSON."""
    found = ctx.site.jobs.get(job_id)
    if found is None:
        raise click.ClickException(f"no job {job_id}")
    click.echo(json.dumps(found.to_json(), indent=2))


@job.command("set")
@click.argument("job_id", type=int)
@click.option("--state", type=click.Choice((OK, FAILED)), help="The job's new state.")
@click.option("--task", type=click.Choice(TASKS), help="The job's new task.")
@click.option("--task-percent", type=click.FloatRange(0, 100), help="Percent of the task.")
@click.option("--exception", metavar="MSG", help="Why (shown to whoever polls the job).")
@pass_context
@domain_errors(JobError)
def set_job(ctx, job_id, state, task, task_percent, exception):
    """Change job JOB_ID, e.g. mark a stuck one FAILED."""
    if all(v is None for v in (state, task, task_percent, exception)):
        raise click.UsageError("nothing to change: give --state, --task, --task-percent "
                               "or --exception")
    changed = ctx.site.jobs.set(job_id, state, task, task_percent, exception)
    click.echo(json.dumps(changed.to_json(), indent=2))
