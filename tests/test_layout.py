"""The house rules of docs/architecture.md, checked on the source: which way imports go, no
import circles, and the few places that alone may do a thing."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "importer", "exporter", "skyrelay")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """The modules `path` imports (every import, or only those run when it is imported)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("package, forbidden", [
    ("model", {"flask", "werkzeug", "requests", "importer", "exporter", "skyrelay"}),
    ("importer", {"exporter", "skyrelay", "requests"}),
    ("exporter", {"importer", "skyrelay", "flask"}),
])
def test_imports_go_one_way(package, forbidden):
    wrong = {f"{name} imports {imported}"
             for name, path in modules().items() if top(name) == package
             for imported in imports(path) if top(imported) in forbidden}
    assert not wrong, sorted(wrong)


def test_no_import_circles():
    """Among the project's modules, counting the imports that run at import time."""
    known = modules()
    graph = {name: {i for i in imports(path, top_level_only=True) if i in known and i != name}
             for name, path in known.items()}
    done, visiting = set(), []

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, " -> ".join(visiting[visiting.index(name):] + [name])
        visiting.append(name)
        for needed in sorted(graph[name]):
            visit(needed)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_model_is_folders_by_concept_not_a_flat_list():
    flat = sorted(p.name for p in (REPO / "model").glob("*.py") if p.name != "__init__.py")
    assert flat == ["site.py"]


def test_the_importer_reaches_its_shared_objects_through_importer_state():
    users = [name for name, path in modules().items()
             if top(name) == "importer" and "extensions[" in path.read_text()]
    assert users == ["importer.state"]


def test_only_the_blob_store_compares_an_md5_with_the_expected_one():
    """`Digests.checked` is the one comparison of received with expected MD5."""
    suspicious = []
    for name, path in modules().items():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if ".md5 !=" in code or "md5 != " in code or "!= record.md5" in code:
                suspicious.append(f"{name}:{number}: {line.strip()}")
    assert len(suspicious) == 1 and suspicious[0].startswith("model.store.blobs:"), suspicious
