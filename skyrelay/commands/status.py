"""`skyrelay status TRACE_ID`: did the data of a sync or bundle land, and what happened to it."""

import json
import sys
import time

import click

from skyrelay.commands.context import pass_context


SUMMARY_COLUMNS = (("Done", "done"), ("Trace ID", "trace_id"), ("Trace status", "trace_status"),
                   ("Trace event status", "trace_event_status"))
HISTORY_COLUMNS = (("Start", "start_time"), ("Domain", "domain"), ("ID", "domain_id"),
                   ("Component", "component"), ("Operation", "operation"),
                   ("Status", "trace_event_status"), ("Trace status", "trace_status"),
                   ("ms", "duration"), ("Exception", "exception"))


def table(columns, rows: list[dict]) -> str:
    """A plain `a | b | c` table, columns as wide as their widest cell."""
    cells = [[title for title, _ in columns]]
    cells += [[_cell(row.get(key), key) for _, key in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
             for line in cells]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def _cell(value, key: str) -> str:
    if key == "start_time" and isinstance(value, int):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value / 1000)) + \
            f".{value % 1000:03d}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def render(summary: dict, history: list[dict] | None, output: str) -> str:
    if output == "json":
        return json.dumps(_with_history(summary, history), indent=2)
    text = table(SUMMARY_COLUMNS, [summary])
    if history is not None:
        text += "\n\n" + table(HISTORY_COLUMNS, history)
    return text


def _with_history(summary: dict, history: list[dict] | None) -> dict:
    return dict(summary, history=history) if history is not None else dict(summary)


@click.command()
@click.argument("trace_id")
@click.option("--history", is_flag=True, help="List every event of the trace, oldest first.")
@click.option("--format", "output", type=click.Choice(("table", "json")), default="table",
              show_default=True, help="Output format.")
@click.option("--target", "target_name", metavar="NAME",
              help="Also ask this export target's site (its user needs the role 'user').")
@pass_context
def status(ctx, trace_id, history, output, target_name):
    """What happened under TRACE_ID (a sync run or a bundle ingest) on this site and,
    with --target, on that target's site. Exit status 1 if either could not say."""
    traces = ctx.site.traces
    local = traces.summary(trace_id)
    local_history = ([e.to_json() for e in traces.history(trace_id)]
                     if history and local else None)
    problems = [] if local else [f"no trace {trace_id} on this site"]
    if target_name is None:
        if local is None:
            raise click.ClickException(problems[0])
        click.echo(render(local, local_history, output))
        return
    remote, remote_history = _ask_target(ctx, target_name, trace_id, history, problems)
    if output == "json":
        click.echo(json.dumps({
            "local": local and _with_history(local, local_history),
            "target": remote and dict(_with_history(remote, remote_history),
                                      name=target_name)}, indent=2))
    else:
        for title, found, events in (("this site", local, local_history),
                                     (f"target {target_name}", remote, remote_history)):
            if found is not None:
                click.echo(f"{title}:\n{render(found, events, output)}\n")
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        sys.exit(1)


def _ask_target(ctx, name: str, trace_id: str, history: bool, problems: list):
    from exporter.trace_query import TraceQueryError, remote_trace
    from model.export.targets import TargetError
    try:
        target = ctx.site.targets.get(name)
        return remote_trace(target, trace_id, history, ctx.config["exporter.timeout_s"])
    except (TargetError, TraceQueryError) as exc:
        problems.append(str(exc))
        return None, None
