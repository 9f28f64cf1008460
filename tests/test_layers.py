"""The package layering, read from the source with ``ast``: ingest and stores at the bottom, rag above
them, api on top; settings are read by the faces only.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ingest", "stores", "rag", "api")


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported_modules(source: str, package: tuple[str, ...]) -> set[str]:
    """Every module ``source`` imports (``from . import x`` resolved against ``package``, its own package)."""
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):  # also imports inside functions: they are dependencies all the same
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # "from rag import settings"
    return found


@cache
def imports_of(package: str) -> dict[Path, set[str]]:
    return {
        path: imported_modules(path.read_text(encoding="utf-8"), path.relative_to(ROOT).parts[:-1])
        for path in python_files(package)
    }


def uses(package: str, target: str) -> list[str]:
    """``file: module`` for each import in ``package`` of ``target`` or one of its submodules."""
    return sorted(
        f"{path.relative_to(ROOT)}: {module}"
        for path, modules in imports_of(package).items()
        for module in modules
        if module == target or module.startswith(target + ".")
    )


def test_every_package_has_sources() -> None:
    for package in PACKAGES:
        assert (ROOT / package / "__init__.py").is_file()
        assert imports_of(package), package


@pytest.mark.parametrize(("package", "forbidden"), [
    ("ingest", "rag"), ("ingest", "api"),
    ("stores", "rag"), ("stores", "api"),
    ("rag", "api"),
])
def test_lower_layers_do_not_import_higher_ones(package: str, forbidden: str) -> None:
    assert uses(package, forbidden) == []


@pytest.mark.parametrize("package", ["ingest", "stores"])
def test_settings_stay_in_the_faces(package: str) -> None:
    assert uses(package, "rag.settings") == []
    assert uses(package, "pydantic_settings") == []
    mentions = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in python_files(package)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if "RAG_" in line
    ]
    assert mentions == []


# The one text analyzer (scripts, punctuation, identifiers) is a leaf that every layer imports, ingest too.
TEXT_ANALYSIS = "stores.text_analysis"


def test_text_analysis_is_a_leaf() -> None:
    modules = imported_modules((ROOT / "stores" / "text_analysis.py").read_text(encoding="utf-8"), ("stores",))
    assert not [m for m in modules if m.split(".")[0] in PACKAGES]


def test_package_graph_is_acyclic() -> None:
    def depends(package: str, other: str) -> bool:
        return any(not module.split(": ")[1].startswith(TEXT_ANALYSIS) for module in uses(package, other))

    graph = {
        package: {other for other in PACKAGES if other != package and depends(package, other)} for package in PACKAGES
    }
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(package: str, path: tuple[str, ...]) -> None:
        if state.get(package) == "done":
            return
        assert state.get(package) != "active", f"import cycle: {' -> '.join((*path, package))}"
        state[package] = "active"
        for dependency in sorted(graph[package]):
            visit(dependency, (*path, package))
        state[package] = "done"
        order.append(package)

    for package in PACKAGES:
        visit(package, ())
    assert graph["api"] >= {"rag"} and graph["rag"] >= {"ingest", "stores"}  # the graph was really read


def test_the_checker_sees_every_kind_of_import() -> None:
    source = (
        "import os, rag.settings\n"
        "from api import app\n"
        "from . import sibling\n"
        "from ..stores.hit import Hit\n"
        "def late():\n"
        "    import ingest.files\n"
    )
    found = imported_modules(source, ("rag", "llms"))
    assert {"os", "rag.settings", "api", "api.app", "rag.llms.sibling", "rag.stores.hit", "ingest.files"} <= found
