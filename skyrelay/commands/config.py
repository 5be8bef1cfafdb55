"""`skyrelay config`: every setting with its value, default, environment variable and help."""

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from skyrelay.commands.context import pass_context
from skyrelay.settings import SETTINGS, Setting


@click.command("config")
@pass_context
def show_config(ctx):
    """Show the settings in force and where each can be changed."""
    for setting in SETTINGS:
        value = _shown(setting, ctx.config[setting.key])
        changed = "" if value == setting.default else f"  (default {setting.default!r})"
        click.echo(f"{setting.key} = {value!r}{changed}")
        click.echo(f"    {setting.help}  env: {setting.env_var}")


def _shown(setting: Setting, value):
    """Settings as they may be printed: secrets, and a password inside a database URL, are
    masked."""
    if setting.secret and value:
        return "********"
    if setting.key == "database.url":
        try:
            return make_url(value).render_as_string(hide_password=True)
        except ArgumentError:
            return value
    return value
