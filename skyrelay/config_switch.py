"""Setting `storage.backend` in a site's YAML configuration file, every other byte of it
kept: what `skyrelay storage migrate` does once every blob is in the bucket.
"""

import os
import tempfile
from pathlib import Path

import yaml

from skyrelay.settings import BY_KEY

BACKEND = "storage.backend"


class SwitchError(Exception):
    """storage.backend cannot be switched in the configuration file; the message says what
    to do instead."""


class ConfigSwitch:
    """storage.backend set to s3 in the YAML file, every other byte of it kept (comments,
    order, flow or block style). Made before anything is copied, so that a file that cannot
    be switched stops the migration before it starts."""

    def __init__(self, path: Path):
        env_var = BY_KEY[BACKEND].env_var
        if env_var in os.environ:
            raise SwitchError(f"{BACKEND} is set by the environment variable {env_var}, "
                              "which this command cannot switch: remove it (the "
                              "configuration file then decides) and run again")
        if not path.is_file():
            raise SwitchError(f"no configuration file {path}: put the storage.* settings "
                              "of the bucket in the site's configuration file (--config) "
                              "and run again")
        self.path = path
        self.text = path.read_text()
        self.switched_text = switched_yaml(self.text, path)

    def apply(self) -> None:
        """Replace the file at once (a crash leaves the old file or the new, never half)."""
        if self.path.read_text() != self.text:
            raise SwitchError(f"{self.path} changed while the blobs were copied: not "
                              "switched; run again")
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".skyrelay-")
        try:
            with os.fdopen(handle, "w") as out:
                out.write(self.switched_text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, self.path.stat().st_mode & 0o7777)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def switched_yaml(text: str, path: Path) -> str:
    """`text` with storage.backend set to s3: its value replaced where it is written, or the
    key added to the `storage` mapping (or a `storage` section appended). The result is
    parsed back and must differ from the original in that one setting only."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        original = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SwitchError(f"{path}: not valid YAML: {exc}") from exc
    if root is None:
        edited = text + ("" if text.endswith("\n") or not text else "\n") + \
            "storage:\n  backend: s3\n"
    elif isinstance(root, yaml.MappingNode) and not root.flow_style:
        edited = _edited(text, root, path)
    else:
        raise SwitchError(f"{path}: cannot set {BACKEND} in this file automatically: "
                          "set it to s3 by hand once the migration verified every blob")
    expected = _unshared(original)
    if "storage.backend" in expected:
        expected["storage.backend"] = "s3"
    else:
        expected.setdefault("storage", {})["backend"] = "s3"
    if yaml.safe_load(edited) != expected:
        raise SwitchError(f"{path}: cannot set {BACKEND} in this file automatically (anchors, "
                          "tags or an unusual layout): set it to s3 by hand once the "
                          "migration verified every blob")
    return edited


def _unshared(value):
    """A copy in which no two places are one object (YAML anchors and aliases): changing
    the storage section of the copy must not change anything else."""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


def _edited(text: str, root: yaml.MappingNode, path: Path) -> str:
    storage_node = None
    for key, value in root.value:
        if key.value == BACKEND:                       # written as one dotted key
            return _replaced(text, value)
        if key.value == "storage":
            storage_node = value
    if storage_node is None:
        return text + ("" if text.endswith("\n") else "\n") + "storage:\n  backend: s3\n"
    if not isinstance(storage_node, yaml.MappingNode) or not storage_node.value:
        raise SwitchError(f"{path}: its storage section is not a mapping of settings")
    for key, value in storage_node.value:
        if key.value == "backend":
            return _replaced(text, value)
    if storage_node.flow_style:                        # storage: {path: …, bucket: …}
        at = storage_node.start_mark.index + 1
        return text[:at] + "backend: s3, " + text[at:]
    first_key = storage_node.value[0][0]
    at = first_key.start_mark.index - first_key.start_mark.column
    return text[:at] + " " * first_key.start_mark.column + "backend: s3\n" + text[at:]


def _replaced(text: str, value: yaml.Node) -> str:
    if not isinstance(value, yaml.ScalarNode):
        raise SwitchError(f"{BACKEND} is not a plain value")
    return text[:value.start_mark.index] + "s3" + text[value.end_mark.index:]
