"""`skyrelay target add | list | show | check | set | enable | disable | remove`.

Passwords come from standard input or SKYRELAY_TARGET_PASSWORD, never from argv, and no
command prints them: everything shown comes from `Target.to_json()`, which leaves it out.
"""

from datetime import datetime, timezone

import click

from model.export.targets import PROTOCOLS, TargetError, make_filter
from skyrelay.commands.context import domain_errors, pass_context
from skyrelay.commands.users import read_secret

PASSWORD_ENV = "SKYRELAY_TARGET_PASSWORD"


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _state(target) -> str:
    if not target.enabled:
        return "disabled"
    if target.auth_failed:
        return "blocked (credentials refused)"
    if target.next_attempt_ms > datetime.now(timezone.utc).timestamp() * 1000:
        return f"backing off until {_when(target.next_attempt_ms)}"
    return "ok"


def _filter_text(f) -> str:
    parts = []
    if f.camera_ids:
        parts.append("cameras " + ",".join(f.camera_ids))
    if f.event_types:
        parts.append("event types " + ",".join(f.event_types))
    if f.after_ms is not None:
        parts.append(f"from {_when(f.after_ms)}")
    if f.before_ms is not None:
        parts.append(f"before {_when(f.before_ms)}")
    return "; ".join(parts) or "everything"


def _stores(ctx):
    return ctx.site.targets, ctx.site.queue


@click.group()
def target():
    """Manage export targets: the sites this site sends its data to."""


@target.command("add")
@click.argument("name")
@click.option("--url", required=True, help="The importer's import URL, e.g. "
              "https://archive.example.org/import.")
@click.option("--user", required=True, help="User name on the importer (role import).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard "
              f"input (else {PASSWORD_ENV}, else a prompt).")
@click.option("--protocol", default="auto", type=click.Choice(PROTOCOLS),
              show_default=True, help="Protocol version to use.")
@click.option("--camera", "cameras", multiple=True, metavar="ID",
              help="Send only these cameras' data; repeat for several.")
@click.option("--event-type", "event_types", multiple=True, metavar="T",
              help="Send only events of these types (no standalone files); repeat.")
@click.option("--after", metavar="T", help="Only data at or after T (ms or ISO 8601).")
@click.option("--before", metavar="T", help="Only data before T (ms or ISO 8601).")
@click.option("--ca-bundle", metavar="PATH", help="PEM file of the CAs to trust for this "
              "target's TLS certificate (default: the system's).")
@click.option("--bwlimit", metavar="RATE", help="Bandwidth limit for file data sent to "
              "this target, bytes per second with K, M, G suffixes (e.g. 2M); 0 for none.")
@pass_context
@domain_errors(TargetError)
def add(ctx, name, url, user, password_stdin, protocol, cameras, event_types, after,
        before, ca_bundle, bwlimit):
    """Add export target NAME and queue everything it should receive."""
    targets, queue = _stores(ctx)
    selection = make_filter(cameras, event_types, after, before)
    password = read_secret(password_stdin, PASSWORD_ENV, f"Password of {user} at {url}")
    added = targets.add(name, url, user, password, protocol, selection, ca_bundle, bwlimit)
    queued = queue.enqueue_new(added)
    click.echo(f"added target {added.name} ({added.url}, user {added.user}); "
               f"{queued} entities queued")


@target.command("list")
@pass_context
def list_targets(ctx):
    """List targets with their state and backlog (never passwords)."""
    targets, queue = _stores(ctx)
    for entry in targets.list():
        counts = queue.counts(entry.target_id)
        click.echo(f"{entry.name}\t{entry.url}\tuser={entry.user}\t{entry.protocol}\t"
                   f"{_state(entry)}\tpending={counts['pending']} "
                   f"failed={counts['failed']} done={counts['done']}")


@target.command("show")
@click.argument("name")
@pass_context
@domain_errors(TargetError)
def show(ctx, name):
    """Show target NAME: settings, filter, backlog and recent failures."""
    targets, queue = _stores(ctx)
    entry = targets.get(name)
    for label, value in _described(entry, queue.counts(entry.target_id)):
        click.echo(f"{label + ':':<19}{value}")
    for failure in queue.failures(entry.target_id, limit=10):
        click.echo(f"  failed {failure.kind} {failure.entity_id} "
                   f"({failure.attempts} attempts): {failure.last_error}")


def _described(entry, counts: dict) -> tuple:
    """The (label, value) lines of `target show`; the password only as a fact, never shown."""
    return (("name", entry.name), ("url", entry.url), ("user", entry.user),
            ("password", "(set, never shown)"), ("protocol", entry.protocol),
            ("filter", _filter_text(entry.filter)),
            ("ca bundle", entry.ca_bundle or "system default"),
            ("bandwidth limit", f"{entry.bwlimit} bytes/s" if entry.bwlimit else "none"),
            ("state", _state(entry)), ("failures in a row", entry.failures),
            ("last error", entry.last_error or "-"),
            ("backlog", f"pending {counts['pending']}, failed {counts['failed']}, "
                        f"done {counts['done']}"))


@target.command("check")
@click.argument("name")
@pass_context
@domain_errors(TargetError)
def check(ctx, name):
    """Connect and log in to target NAME; report what its importer supports."""
    from exporter.check import check_target
    result = check_target(ctx.site.targets.get(name), ctx.config["exporter.timeout_s"])
    if not result.ok:
        raise click.ClickException(f"target {name}: {result.message}")
    click.echo(f"target {name}: {result.message}")
    if result.warning:
        click.echo(f"target {name}: WARNING: {result.warning}", err=True)


@target.command("set")
@click.argument("name")
@click.option("--url", help="New import URL.")
@click.option("--user", help="New user name.")
@click.option("--password-stdin", is_flag=True, help="Read a new password from stdin.")
@click.option("--password-env", is_flag=True, help=f"Take a new password from {PASSWORD_ENV}.")
@click.option("--protocol", type=click.Choice(PROTOCOLS), help="Protocol version.")
@click.option("--ca-bundle", metavar="PATH", help="CA bundle ('' for the system's).")
@click.option("--bwlimit", metavar="RATE", help="Bandwidth limit, e.g. 2M (0 for none).")
@pass_context
@domain_errors(TargetError)
def set_target(ctx, name, url, user, password_stdin, password_env, protocol, ca_bundle,
               bwlimit):
    """Change how target NAME is reached; clears its backoff and credential block."""
    password = None
    if password_stdin or password_env:
        password = read_secret(password_stdin, PASSWORD_ENV, "New password")
    changed = ctx.site.targets.change(name, url=url, user=user, password=password,
                                      protocol=protocol, ca_bundle=ca_bundle, bwlimit=bwlimit)
    click.echo(f"changed target {changed.name}; the next sync tries it at once")


def _switch_command(enabled: bool, verb: str, help_text: str) -> click.Command:
    """`target enable` and `target disable`: one command body, told which way to switch."""
    @target.command(verb, help=help_text)
    @click.argument("name")
    @pass_context
    @domain_errors(TargetError)
    def switch(ctx, name):
        ctx.site.targets.change(name, enabled=enabled)
        click.echo(f"{verb}d target {name}")
    return switch


enable = _switch_command(True, "enable",
                         "Sync target NAME again (also retries its failed entities at once).")
disable = _switch_command(False, "disable", "Stop syncing target NAME; its queue is kept.")


@target.command("remove")
@click.argument("name")
@pass_context
@domain_errors(TargetError)
def remove(ctx, name):
    """Remove target NAME and its queue."""
    ctx.site.targets.remove(name)
    click.echo(f"removed target {name}")
