import pytest

from tests.blackbox.helpers import start_site


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """One real `skyrelay serve` (SQLite, one worker) shared by the modules: every test makes
    its own IDs and camera, so they do not see each other. A module needing a fresh site
    (fixed IDs) overrides this fixture."""
    started = start_site(tmp_path_factory)
    yield started
    started.server.stop()


@pytest.fixture(scope="session")
def tiny_site(tmp_path_factory):
    """A site with a two-entry entity cache and staged bytes expiring after 1 s."""
    started = start_site(tmp_path_factory, "tiny",
                         {"importer.cache_size": 2, "importer.staged_ttl_s": 1})
    yield started
    started.server.stop()
