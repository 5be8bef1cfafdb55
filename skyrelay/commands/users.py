"""`skyrelay user add | list | remove | roles`."""

import os
import sys

import click

from model.ops.users import ROLES, UserError
from skyrelay.commands.context import domain_errors, pass_context


def read_secret(use_stdin: bool, env_var: str, prompt: str) -> str:
    """A password from stdin, the environment or a hidden prompt; never from argv."""
    if use_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if os.environ.get(env_var):
        return os.environ[env_var]
    if sys.stdin.isatty():
        return click.prompt(prompt, hide_input=True, confirmation_prompt=True)
    raise click.UsageError(f"no password: pass --password-stdin or set {env_var}")


@click.group()
def user():
    """Manage the users who may import into or read from this site."""


@user.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES),
              help="Role to grant; repeat for several.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input (else SKYRELAY_PASSWORD, "
                   "else a prompt).")
@pass_context
@domain_errors(UserError)
def add(ctx, name, roles, password_stdin):
    """Add user NAME with the given roles."""
    password = read_secret(password_stdin, "SKYRELAY_PASSWORD", f"Password for {name}")
    created = ctx.site.users.add(name, password, roles)
    click.echo(f"added user {created.name} ({', '.join(sorted(created.roles))})")


@user.command("list")
@pass_context
def list_users(ctx):
    """List users and their roles (never passwords)."""
    for entry in ctx.site.users.list():
        click.echo(f"{entry.name}\t{' '.join(sorted(entry.roles))}")


@user.command("roles")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES),
              help="The user's new roles; repeat for several.")
@pass_context
@domain_errors(UserError)
def set_roles(ctx, name, roles):
    """Replace the roles of user NAME."""
    changed = ctx.site.users.set_roles(name, roles)
    click.echo(f"user {changed.name} now has {', '.join(sorted(changed.roles))}")


@user.command("remove")
@click.argument("name")
@pass_context
@domain_errors(UserError)
def remove(ctx, name):
    """Remove user NAME."""
    ctx.site.users.remove(name)
    click.echo(f"removed user {name}")
