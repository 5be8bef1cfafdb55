"""Configuration: defaults from the settings table, the YAML file, SKYRELAY_… environment
overrides, and validation at start with a message naming the key."""

from pathlib import Path

import pytest
import yaml

from skyrelay import config
from skyrelay.config import ConfigError
from skyrelay.settings import BY_KEY, SETTINGS

REPO = Path(__file__).resolve().parents[2]


def write(folder: Path, text: str) -> Path:
    path = folder / "site.yaml"
    path.write_text(text)
    return path


def refused(path=None, environ=None, **kwargs) -> str:
    with pytest.raises(ConfigError) as error:
        config.load(path, environ={} if environ is None else environ, **kwargs)
    return str(error.value)


def test_defaults_when_no_file_is_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = config.load(environ={})
    assert loaded.as_dict() == {s.key: s.default for s in SETTINGS}
    assert loaded.base_dir == tmp_path.resolve()
    assert loaded.database_url == f"sqlite:///{tmp_path.resolve()}/var/skyrelay.db"
    assert loaded.storage_path == tmp_path.resolve() / "var" / "blobs"


def test_the_shipped_config_yaml_says_what_the_settings_table_says():
    """config.yaml documents the defaults; it must not drift from SETTINGS."""
    loaded = config.load(REPO / "config.yaml", environ={})
    assert loaded.as_dict() == {s.key: s.default for s in SETTINGS}
    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    flat = {f"{section}.{key}" for section, keys in shipped.items() for key in keys}
    assert flat <= set(BY_KEY)


def test_values_from_the_yaml_file(tmp_path):
    path = write(tmp_path, "site: {name: north}\n"
                           "importer: {port: 9000, cache_size: 5}\n"
                           "exporter:\n  timeout_s: 3\n")
    loaded = config.load(path, environ={})
    assert loaded["site.name"] == "north"
    assert loaded["importer.port"] == 9000 and loaded["importer.cache_size"] == 5
    assert loaded["exporter.timeout_s"] == 3.0 and type(loaded["exporter.timeout_s"]) is float
    assert loaded["importer.url_path"] == "/import", "unset keys keep their default"


def test_environment_overrides_the_file_with_typed_values(tmp_path):
    path = write(tmp_path, "importer: {port: 9000}\n")
    environ = {"SKYRELAY_IMPORTER_PORT": "8801", "SKYRELAY_SITE_NAME": "123",
               "SKYRELAY_EXPORTER_TIMEOUT_S": "2.5"}
    loaded = config.load(path, environ=environ)
    assert loaded["importer.port"] == 8801 and type(loaded["importer.port"]) is int
    assert loaded["site.name"] == "123", "a str setting keeps the text as it is"
    assert loaded["exporter.timeout_s"] == 2.5


def test_explicit_overrides_win_over_the_environment(tmp_path):
    loaded = config.load(write(tmp_path, ""), environ={"SKYRELAY_IMPORTER_PORT": "8801"},
                         overrides={"importer.port": 0})
    assert loaded["importer.port"] == 0


def test_config_file_named_by_the_environment(tmp_path):
    path = write(tmp_path, "site: {name: from-env}\n")
    assert config.load(environ={"SKYRELAY_CONFIG": str(path)})["site.name"] == "from-env"


@pytest.mark.parametrize("text, key, words", [
    ("importer: {prot: 8800}\n", "importer.prot", "unknown setting"),
    ("importer: 5\n", "importer", "unknown setting"),
    ("importer: {port: eighty}\n", "importer.port", "expected int, got 'eighty'"),
    ("importer: {port: true}\n", "importer.port", "expected int, got True"),
    ("importer: {port: -1}\n", "importer.port", "at least 0"),
    ("importer: {cache_size: 0}\n", "importer.cache_size", "at least 1"),
    ("exporter: {timeout_s: 0}\n", "exporter.timeout_s", "at least 0.001"),
    ("storage: {backend: nfs}\n", "storage.backend", "must be one of local, s3"),
    ("database: {url: 5}\n", "database.url", "expected str"),
])
def test_a_bad_file_is_refused_naming_the_key(tmp_path, text, key, words):
    message = refused(write(tmp_path, text))
    assert f"'{key}'" in message and words in message


@pytest.mark.parametrize("value, words", [("abc", "expected int, got 'abc'"),
                                          ("-5", "at least 0"), ("", "expected int")])
def test_a_bad_environment_value_is_refused_naming_key_and_variable(tmp_path, value, words):
    message = refused(write(tmp_path, ""), environ={"SKYRELAY_IMPORTER_PORT": value})
    assert "'importer.port'" in message and "SKYRELAY_IMPORTER_PORT" in message
    assert words in message


def test_unknown_override_is_refused():
    assert "'importer.prot'" in refused(overrides={"importer.prot": 1})


def test_a_file_that_is_not_yaml_or_not_a_mapping_is_refused(tmp_path):
    assert "not valid YAML" in refused(write(tmp_path, "importer: {port: [\n"))
    assert "expected a mapping" in refused(write(tmp_path, "- a\n- b\n"))


def test_a_named_file_that_does_not_exist_is_refused(tmp_path):
    assert "no such configuration file" in refused(tmp_path / "typo.yaml")
    assert "no such configuration file" in refused(
        environ={"SKYRELAY_CONFIG": str(tmp_path / "typo.yaml")})


def test_relative_paths_are_taken_from_the_config_files_folder(tmp_path, monkeypatch):
    folder = tmp_path / "etc" / "site"
    folder.mkdir(parents=True)
    path = write(folder, "database: {url: 'sqlite:///data/a.db'}\nstorage: {path: blobs}\n")
    monkeypatch.chdir(tmp_path)
    loaded = config.load(Path("etc/site/site.yaml"), environ={})
    assert loaded.database_url == f"sqlite:///{folder.resolve()}/data/a.db"
    assert loaded.storage_path == folder.resolve() / "blobs"
    assert path.exists()


@pytest.mark.parametrize("url", ["sqlite:////var/lib/skyrelay/a.db", "sqlite:///:memory:",
                                 "postgresql+psycopg://user@db.example/skyrelay"])
def test_absolute_and_server_urls_are_kept(tmp_path, url):
    loaded = config.load(write(tmp_path, f"database: {{url: '{url}'}}\n"), environ={})
    assert loaded.database_url == url


def test_absolute_storage_path_is_kept(tmp_path):
    loaded = config.load(write(tmp_path, "storage: {path: /srv/blobs}\n"), environ={})
    assert loaded.storage_path == Path("/srv/blobs")


def test_every_setting_documents_itself():
    for setting in SETTINGS:
        assert setting.help and setting.env_var.startswith("SKYRELAY_")
        assert isinstance(setting.default, setting.type)
