"""Shared fixtures: a site's storage on SQLite and on a real PostgreSQL server.

Tests that take `site` run once per database. PostgreSQL tests are skipped on a developer
machine without PostgreSQL, but fail loudly in CI (CI=true), where .ci/run installs it.
"""

import os

import pytest

from tests.pgcluster import Cluster
from tests.site_kit import open_test_site
from model.store.database import Database

IN_CI = os.environ.get("CI") == "true"
# Fixtures shared by several test modules: `http` (the importer over each transport, made
# once per session) and `server_factory` (real `skyrelay serve` processes).
pytest_plugins = ("tests.server", "tests.importer_fixtures")


@pytest.fixture(scope="session")
def pg_cluster():
    try:
        cluster = Cluster().start()
    except Exception as exc:  # noqa: BLE001 - any failure to start means "no PostgreSQL here"
        if IN_CI:
            pytest.fail(f"PostgreSQL could not be started in CI: {exc}")
        pytest.skip(f"PostgreSQL not available here: {exc}")
    template = cluster.new_database()
    migrator = Database(cluster.url(template))
    migrator.migrate()
    migrator.dispose()  # a template must have no open connections to be cloned
    cluster.template = template
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, migrated, empty archive database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/site.db"
    cluster = request.getfixturevalue("pg_cluster")
    return cluster.url(cluster.new_database(cluster.template))


@pytest.fixture
def site(database_url, tmp_path):
    opened = open_test_site(database_url, tmp_path / "blobs")
    yield opened
    opened.close()


@pytest.fixture
def sqlite_site(tmp_path):
    """SQLite only: for tests about behaviour that does not depend on the database."""
    opened = open_test_site(f"sqlite:///{tmp_path}/site.db", tmp_path / "blobs")
    yield opened
    opened.close()
