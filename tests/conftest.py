"""Shared fixtures: a site's storage on SQLite and on a real PostgreSQL server, its blobs in
a local folder or in a real S3 object store (SeaweedFS).

Tests that take `site` run once per database. PostgreSQL tests are skipped on a developer
machine without PostgreSQL, but fail loudly in CI (CI=true), where .ci/run installs it.

A test (or module) marked `blob_backends` runs on S3 too (`pytest_generate_tests` below): one
that takes `site` on SQLite and PostgreSQL with a local blob folder, and on PostgreSQL with S3
(what a site with several importer hosts runs); one that takes `sqlite_site` with either
backend; one that takes `http` over a `skyrelay serve` on S3 as well. Not every pair of
database and backend, and only tests whose blobs matter: that keeps `make test` short.
"""

import os

import pytest

from tests.object_store import running_store
from tests.pgcluster import Cluster
from tests.site_kit import open_test_site, s3_settings
from model.store.database import Database

IN_CI = os.environ.get("CI") == "true"
# Fixtures shared by several test modules: `http` (the importer over each transport, made
# once per session) and `server_factory` (real `skyrelay serve` processes).
pytest_plugins = ("tests.server", "tests.importer_fixtures")

# (database, blob backend) of a `blob_backends` test that takes `site`.
SITE_COMBINATIONS = (("sqlite", "local"), ("postgresql", "local"), ("postgresql", "s3"))


def pytest_configure(config):
    config.addinivalue_line("markers", "blob_backends: a test that uses a site runs on S3 as "
                                       "well as on the local blob folder")


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc):
    """Parametrize a `blob_backends` test by a mark of its own: pytest then leaves alone the
    fixtures' own params for the names the mark covers (database_url's two, http's three), so
    that (database, backend) are chosen as pairs, not as a product. It runs first, before
    pytest reads the test's parametrize marks."""
    if metafunc.definition.get_closest_marker("blob_backends") is None:
        return
    names = metafunc.fixturenames
    if "blob_backend" in names and "database_url" in names:
        metafunc.definition.add_marker(pytest.mark.parametrize(
            ("database_url", "blob_backend"), SITE_COMBINATIONS, indirect=True,
            ids=[db if backend == "local" else f"{db}-{backend}"
                 for db, backend in SITE_COMBINATIONS]))
    elif "blob_backend" in names:
        metafunc.definition.add_marker(pytest.mark.parametrize(
            "blob_backend", ["local", "s3"], indirect=True))
    if "http" in names:
        from tests.importer_fixtures import TRANSPORTS, S3_TRANSPORTS
        metafunc.definition.add_marker(pytest.mark.parametrize(
            "http", TRANSPORTS + S3_TRANSPORTS, indirect=True))


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


@pytest.fixture(scope="session")
def object_store():
    """One real S3 server (SeaweedFS) for the session; each test takes its own bucket with
    `object_store.new_bucket()`. Tests that kill or pause a server start their own."""
    with running_store() as store:
        yield store


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, migrated, empty archive database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/site.db"
    cluster = request.getfixturevalue("pg_cluster")
    return cluster.url(cluster.new_database(cluster.template))


@pytest.fixture
def blob_backend(request) -> str:
    """Where a test site's blobs are: the local folder, unless a `blob_backends` test is
    parametrized to "s3"."""
    return getattr(request, "param", "local")


@pytest.fixture(scope="session")
def s3_bucket(object_store) -> str:
    """The session's one bucket for tests on S3; each test keeps to a prefix of its own."""
    return object_store.new_bucket()


@pytest.fixture
def blob_settings(blob_backend, request) -> dict:
    """The settings (by dotted key) that put a test site's blobs on its backend: none for the
    local folder; for S3, the session's object store, bucket and a fresh prefix."""
    if blob_backend == "local":
        return {}
    return s3_settings(request.getfixturevalue("object_store"),
                       request.getfixturevalue("s3_bucket"))


@pytest.fixture
def site(database_url, blob_settings, tmp_path):
    opened = open_test_site(database_url, tmp_path / "blobs", with_settings=blob_settings)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_site(blob_settings, tmp_path):
    """SQLite only: for tests about behaviour that does not depend on the database."""
    opened = open_test_site(f"sqlite:///{tmp_path}/site.db", tmp_path / "blobs",
                            with_settings=blob_settings)
    yield opened
    opened.close()
