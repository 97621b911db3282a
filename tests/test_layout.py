"""The package layout: data flows one way, config -> task -> train -> search -> insight -> cli.

A module may import from its own package and from packages before it in the flow, never from
one after it (lazy imports inside functions and imports for type checking count too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import adamtune

ROOT = Path(adamtune.__file__).parent
# Lower numbers come first in the flow; ``errors`` and ``interrupts`` serve everything.
FLOW = {
    "errors": 0,
    "interrupts": 0,
    "config": 1,
    "task": 2,
    "train": 3,
    "search": 4,
    "insight": 5,
    "api": 6,
    "cli": 7,
    "__init__": 7,
    "__main__": 7,
}


def _place(module: str) -> str:
    """The top-level part of ``adamtune.<part>...`` (a package or a top-level module)."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "adamtune":  # from adamtune import x
                found += [(node.lineno, f"adamtune.{a.name}") for a in node.names]
            elif node.module.startswith("adamtune."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("adamtune.")]
    return found


def test_every_top_level_module_and_package_has_a_place_in_the_flow() -> None:
    modules = {p.stem for p in ROOT.glob("*.py")}
    names = modules | {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert names == set(FLOW)


def test_no_module_imports_from_a_package_later_in_the_flow() -> None:
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT.parent).with_suffix("")
        here = _place(".".join(relative.parts))
        for line, module in _imports(path):
            there = _place(module)
            if there == "__version__":
                continue
            if FLOW[there] > FLOW[here]:
                upward.append(f"{relative}.py:{line} imports {module}")
    assert upward == []


def test_each_package_says_what_it_owns_and_what_it_may_import() -> None:
    for package in ("config", "task", "train", "search", "insight", "cli"):
        doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
        assert doc and "import" in doc, package


def test_only_the_cli_speaks_typer_or_rich() -> None:
    for path in ROOT.rglob("*.py"):
        if "cli" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n.split(".")[0] in ("typer", "rich") for n in names), path
