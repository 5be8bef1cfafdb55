"""Is the database already at every migration head? Answered without alembic.

Importing alembic is a noticeable part of starting, paid by every command that opens a site
(`skyrelay sync` from cron, every few minutes) although the database is nearly always up to
date. The version files declare `revision`, `down_revision` and `depends_on` as plain
literals; from them and the `alembic_version` rows this decides "nothing to apply". Any
doubt (a file not in that form, an unknown revision, no version table) answers False, and
alembic decides as before.
"""

import ast
from pathlib import Path

from sqlalchemy import Connection, inspect, text

_KEYS = ("revision", "down_revision", "depends_on")


def revision_graph(versions: Path) -> dict[str, tuple[str, ...]] | None:
    """revision → the revisions it needs; None if a version file is not in the plain form."""
    graph = {}
    for path in sorted(versions.glob("*.py")):
        if path.name == "__init__.py":
            continue
        values = _literals(path)
        if values is None or not isinstance(values.get("revision"), str):
            return None
        needs = []
        for key in ("down_revision", "depends_on"):
            value = values.get(key)
            if isinstance(value, str):
                value = (value,)
            if value is None:
                continue
            if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
                return None
            needs.extend(value)
        graph[values["revision"]] = tuple(needs)
    return graph


def _literals(path: Path) -> dict | None:
    values = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id in _KEYS:
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                return None
    return values


def at_heads(connection: Connection, versions: Path) -> bool:
    """True only if every revision in `versions` is applied to the database."""
    graph = revision_graph(versions)
    if not graph or not inspect(connection).has_table("alembic_version"):
        return False
    pending = list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    applied = set()
    while pending:
        revision = pending.pop()
        if revision in applied:
            continue
        if revision not in graph:
            return False
        applied.add(revision)
        pending.extend(graph[revision])
    return applied == set(graph)
