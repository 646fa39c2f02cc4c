"""Imports go one way: api -> qa -> embeddings; inside `qa`, from the service down to its parts, never back up.

Every import counts, including those inside functions, so a lazy import cannot hide a dependency that points the
wrong way or closes a circle.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "qa", "embeddings")
FORBIDDEN = {
    "embeddings": {"qa", "api", "fastapi", "starlette", "uvicorn", "jieba"},
    "qa": {"api", "fastapi", "starlette"},
}
# `qa serve` is the one command that starts the web layer; it imports it inside the function.
ALLOWED = {("qa/cli.py", "api.main")}
# The parts of `qa`, lowest first. A module may import from its own part and from parts below it, never above.
QA_LAYERS = (
    ("qa.types", "qa.errors", "qa.text"),  # values, errors and text rules every part shares
    ("qa.ingest",),  # files -> Document -> passages
    ("qa.index",),  # passages -> index on disk or in Milvus
    ("qa.search",),  # question -> ranked passages -> answer
    ("qa.evaluate",),  # question sets -> metrics and reports
    ("qa.service", "qa.milvus_service"),  # one index: search, answer, document changes
    ("qa.config", "qa.factory"),  # settings and the wiring they drive (the edges read them)
    ("qa.knowledge_bases",),  # named collections of indexes, and keys scoped to them
    ("qa.cli", "qa.kb_cli", "qa.__main__"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported_modules(path: Path) -> list[str]:
    """Absolute names of everything `path` imports (a `from package import module` names the module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                names.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return names


def project_imports(path: Path) -> set[str]:
    """The project modules `path` imports (a name inside a module counts as the module)."""
    found = set()
    for name in imported_modules(path):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def layer_of(module: str) -> int | None:
    for rank, layer in enumerate(QA_LAYERS):
        if any(module == part or module.startswith(part + ".") for part in layer):
            return rank
    return None


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for name in imported_modules(path):
            if name.split(".")[0] in FORBIDDEN[package] and (rel, name) not in ALLOWED:
                bad.append(f"{rel} imports {name}")
    assert not bad, bad


def test_api_reaches_embeddings_only_through_qa():
    bad = [f"{p.relative_to(ROOT)} imports {n}" for p in sorted((ROOT / "api").rglob("*.py"))
           for n in imported_modules(p) if n.split(".")[0] == "embeddings"]
    assert not bad, bad


def test_every_qa_module_has_a_layer():
    assert [m for m in MODULES if m.startswith("qa.") and layer_of(m) is None] == []


def test_qa_parts_import_only_downwards():
    bad = []
    for module, path in MODULES.items():
        rank = layer_of(module)
        if rank is None:
            continue
        for name in sorted(project_imports(path)):
            target = layer_of(name)
            if target is not None and target > rank:
                bad.append(f"{module} (layer {rank}) imports {name} (layer {target})")
    assert not bad, bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A circle of imports in `graph` (module -> modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycles_between_project_modules():
    graph = {module: project_imports(path) - {module} for module, path in MODULES.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a"}}) is None


def test_no_qa_or_api_module_is_over_600_lines():
    long = {m: n for m, p in MODULES.items() if not m.startswith("embeddings")
            and (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert not long, long
