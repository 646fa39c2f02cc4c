"""Imports go one way: api -> qa -> embeddings. The core never imports the web framework."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "embeddings": {"qa", "api", "fastapi", "starlette", "uvicorn", "jieba"},
    "qa": {"api", "fastapi", "starlette"},
}
# `qa serve` is the one command that starts the web layer; it imports it inside the function.
ALLOWED = {("qa/cli.py", "api.main")}


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


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
