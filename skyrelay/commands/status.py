"""`skyrelay status TRACE_ID`: did the data of a sync or bundle land, and what happened to it."""

import json
import time

import click

from model.traces import Traces

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


def render(summary: dict, history: list[dict] | None, output: str, source: str | None) -> str:
    if output == "json":
        data = dict(summary)
        if history is not None:
            data["history"] = history
        if source is not None:
            data["site"] = source
        return json.dumps(data, indent=2)
    text = table(SUMMARY_COLUMNS, [summary])
    if source is not None:
        text = f"{source}:\n{text}"
    if history is not None:
        text += "\n\n" + table(HISTORY_COLUMNS, history)
    return text


def register(cli: click.Group) -> None:
    from skyrelay.cli import pass_context

    @cli.command()
    @click.argument("trace_id")
    @click.option("--history", is_flag=True, help="List every event of the trace, oldest first.")
    @click.option("--format", "output", type=click.Choice(("table", "json")), default="table",
                  show_default=True, help="Output format.")
    @pass_context
    def status(ctx, trace_id, history, output):
        """What happened under TRACE_ID (a sync run or a bundle ingest) on this site."""
        traces = Traces(ctx.site.database)
        summary = traces.summary(trace_id)
        if summary is None:
            raise click.ClickException(f"no trace {trace_id} on this site")
        events = [e.to_json() for e in traces.history(trace_id)] if history else None
        click.echo(render(summary, events, output, None))
