"""`skyrelay config`: every setting with its value, default, environment variable and help."""

import click

from skyrelay.settings import SETTINGS


def register(cli: click.Group) -> None:
    from skyrelay.cli import pass_context

    @cli.command("config")
    @pass_context
    def show_config(ctx):
        """Show the settings in force and where each can be changed."""
        for setting in SETTINGS:
            value = ctx.config[setting.key]
            changed = "" if value == setting.default else f"  (default {setting.default!r})"
            click.echo(f"{setting.key} = {value!r}{changed}")
            click.echo(f"    {setting.help}  env: {setting.env_var}")
