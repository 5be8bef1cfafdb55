"""The `skyrelay` command: a thin click layer over the site's classes.

Each command group lives in `skyrelay/commands/`; this module only builds the root group and
the context they share (configuration loaded and the site opened on first use, so that
`--help` works without a database).
"""

import functools
import sys

import click

from skyrelay import __version__, config as config_module, heap
from skyrelay.commands import bundle, config, demo, gc, job, serve, status, sync, target, users
from model.site import Site, open_site


class Context:
    """What every command needs, created on demand."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._config = None
        self._site = None

    @property
    def config(self) -> config_module.Config:
        if self._config is None:
            try:
                self._config = config_module.load(self.config_path)
            except config_module.ConfigError as exc:
                raise click.ClickException(f"configuration: {exc}") from exc
        return self._config

    @property
    def site(self) -> Site:
        """The site's storage, with pending migrations applied."""
        if self._site is None:
            self._site = open_site(self.config)
        return self._site

    def close(self) -> None:
        if self._site is not None:
            self._site.close()


pass_context = click.make_pass_decorator(Context)


def domain_errors(*error_types):
    """Turn the listed domain errors into a clean `Error: …` on stderr and exit status 1."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except error_types as exc:
                raise click.ClickException(str(exc)) from exc
        return wrapper
    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="SKYRELAY_CONFIG", metavar="PATH",
              help="Configuration file (default: config.yaml; env SKYRELAY_CONFIG).")
@click.version_option(__version__, prog_name="skyrelay")
@click.pass_context
def cli(click_context: click.Context, config_path: str | None) -> None:
    """Replicate camera-network archives between sites."""
    click_context.obj = Context(config_path)
    click_context.call_on_close(click_context.obj.close)


for module in (config, users, gc, serve, target, sync, demo, bundle, job, status):
    module.register(cli)


def main() -> None:
    heap.settle_after_start()
    try:
        cli(prog_name="skyrelay")
    finally:
        heap.skip_last_collection()


if __name__ == "__main__":
    sys.exit(main())
