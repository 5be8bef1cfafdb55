"""What every `skyrelay` command shares: the lazily opened site and the error translation.

It lives apart from `skyrelay.cli` so that the command modules can import it while
`skyrelay.cli` imports them: the dependency runs one way only.
"""

import functools

import click

from model.site import Site, open_site
from model.store.object_store import ObjectStoreError
from skyrelay import config as config_module


class Context:
    """What every command needs, created on demand (so `--help` works without a database)."""

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
            try:
                self._site = open_site(self.config)
            except ObjectStoreError as exc:
                raise click.ClickException(f"object store: {exc}") from exc
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
