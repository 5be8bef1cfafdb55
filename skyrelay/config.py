"""Load, override and validate a site's configuration once, at start.

Sources, later wins: the defaults in `settings.SETTINGS`, the YAML file, `SKYRELAY_…`
environment variables. Relative paths (SQLite file, blob folder) are taken relative to the
config file's folder so that a site works from whatever directory it is started in.
"""

import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from skyrelay.settings import BY_KEY, SETTINGS, Setting

DEFAULT_PATH = "config.yaml"


class ConfigError(Exception):
    """The configuration is wrong; the message names the key and what to change."""


class Config:
    """Validated settings, read as `config["importer.port"]`."""

    def __init__(self, values: Mapping[str, Any], base_dir: Path):
        self._values = dict(values)
        self.base_dir = base_dir

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    @property
    def database_url(self) -> str:
        url = self["database.url"]
        prefix = "sqlite:///"
        if url.startswith(prefix) and url != "sqlite:///:memory:":
            path = Path(url[len(prefix):])
            if not path.is_absolute():
                path = self.base_dir / path
            return prefix + str(path)
        return url

    @property
    def storage_path(self) -> Path:
        path = Path(self["storage.path"])
        return path if path.is_absolute() else self.base_dir / path


def load(path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Read the YAML file (the default `config.yaml` may be absent; a file named by the caller
    or SKYRELAY_CONFIG must exist), apply environment and explicit overrides, validate."""
    environ = os.environ if environ is None else environ
    named = path or environ.get("SKYRELAY_CONFIG")
    path = Path(named or DEFAULT_PATH)
    if named and not path.is_file():
        # A mistyped --config must not silently start an empty site with the defaults.
        raise ConfigError(f"{path}: no such configuration file")
    raw = _read_yaml(path) if path.exists() else {}
    values = {}
    for key, value in _flatten(raw).items():
        if key not in BY_KEY:
            raise ConfigError(f"{path}: unknown setting '{key}' (known: {', '.join(BY_KEY)})")
        values[key] = value
    for setting in SETTINGS:
        if setting.env_var in environ:
            values[setting.key] = _parse_env(setting, environ[setting.env_var])
    return from_values({**values, **(overrides or {})}, path.resolve().parent)


def from_values(values: Mapping[str, Any], base_dir: Path | None = None) -> Config:
    """The defaults with `values` over them, validated, relative paths taken from `base_dir`
    (default: the current folder): a site configured in code, with no file."""
    for key in values:
        if key not in BY_KEY:
            raise ConfigError(f"unknown setting '{key}'")
    merged = {s.key: values.get(s.key, s.default) for s in SETTINGS}
    return Config({s.key: _validate(s, merged[s.key]) for s in SETTINGS},
                  base_dir or Path.cwd())


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def _flatten(data: Mapping, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _parse_env(setting: Setting, text: str) -> Any:
    """Environment values are text; YAML parsing gives numbers their type (`8801` → 8801)."""
    if setting.type is str:
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _validate(setting: Setting, value: Any) -> Any:
    where = f"setting '{setting.key}' (env {setting.env_var})"
    if setting.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, setting.type) or isinstance(value, bool):
        raise ConfigError(f"{where}: expected {setting.type.__name__}, got {value!r}")
    if setting.minimum is not None and value < setting.minimum:
        raise ConfigError(f"{where}: must be at least {setting.minimum}, got {value!r}")
    if setting.choices is not None and value not in setting.choices:
        raise ConfigError(f"{where}: must be one of {', '.join(setting.choices)}, got {value!r}")
    return value
