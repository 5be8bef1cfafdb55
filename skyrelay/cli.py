"""The `skyrelay` command: a thin click layer over the site's classes.

Each command group lives in `skyrelay/commands/`, declared at module level; this module only
builds the root group, gives it the shared context (`skyrelay.commands.context`: the
configuration loaded and the site opened on first use, so that `--help` works without a
database) and adds the commands to it.
"""

import sys

import click

from skyrelay import __version__, heap
from skyrelay.commands import (bundle, config, demo, gc, job, serve, status, storage, sync, target,
                               users)
from skyrelay.commands.context import Context


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="SKYRELAY_CONFIG", metavar="PATH",
              help="Configuration file (default: config.yaml; env SKYRELAY_CONFIG).")
@click.version_option(__version__, prog_name="skyrelay")
@click.pass_context
def cli(click_context: click.Context, config_path: str | None) -> None:
    """Replicate camera-network archives between sites."""
    click_context.obj = Context(config_path)
    click_context.call_on_close(click_context.obj.close)


for command in (config.show_config, users.user, gc.gc, serve.serve, target.target, sync.sync,
                demo.demo, bundle.bundle, job.job, status.status, storage.storage):
    cli.add_command(command)


def main() -> None:
    heap.settle_after_start()
    try:
        cli(prog_name="skyrelay")
    finally:
        heap.skip_last_collection()


if __name__ == "__main__":
    sys.exit(main())
