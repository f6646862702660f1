"""The package as a whole: its import graph (no circles, wings import only wings below them) and the
public API of ``meta_spliceai/__init__.py``."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import meta_spliceai

SRC = Path(meta_spliceai.__file__).parent

#: the wings in pipeline order; a module may import modules of its own wing and of wings before it.
#: ``""``: the shared root modules (config, errors, storage, progress, parallel); ``demo`` runs the
#: whole pipeline, so it sits above the wings; the CLI above everything.
ORDER = ["", "reference", "basemodel", "dataset", "maintenance", "metamodel", "variants", "demo", "cli"]
TOP = {"meta_spliceai", "meta_spliceai.__main__"}  # the lazy API and ``python -m``: import anything


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    """Module -> the package modules it imports, at any depth of its code (function-level imports too)."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
                deps |= {t for t in targets if t in files}
                continue
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod not in files:
                continue
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in files]
            deps |= set(subs) if subs else {mod}
            if subs and len(subs) < len(node.names):
                deps.add(mod)
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def wing_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 2 and parts[1] in ORDER:
        return parts[1]  # a wing's own __init__ or a root module named like a wing (demo)
    return parts[1] if len(parts) > 2 else ""


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_planted_cycle_is_found_and_named(tmp_path):
    pkg = tmp_path / "meta_spliceai"
    (pkg / "wing").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "wing" / "__init__.py").write_text("")
    (pkg / "wing" / "a.py").write_text("from .b import x\n")
    (pkg / "wing" / "b.py").write_text("def f():\n    from .a import y  # inside a function: still an arrow\n")
    cycle = find_cycle(import_graph(pkg))
    assert cycle == ["meta_spliceai.wing.a", "meta_spliceai.wing.b", "meta_spliceai.wing.a"]


def test_wings_import_only_wings_below():
    wrong = []
    for mod, deps in import_graph().items():
        if mod in TOP:
            continue
        w = wing_of(mod)
        assert w in ORDER, f"{mod}: wing {w!r} is not in the pipeline order {ORDER}"
        for d in deps:
            if d in TOP and d != "meta_spliceai":
                wrong.append(f"{mod} -> {d}")
            elif d != "meta_spliceai" and ORDER.index(wing_of(d)) > ORDER.index(w):
                wrong.append(f"{mod} ({w or 'root'}) -> {d} ({wing_of(d)})")
    assert not wrong, "imports of a wing above: " + "; ".join(sorted(wrong))


def test_the_library_never_imports_the_cli():
    graph = import_graph()
    offenders = sorted(m for m, deps in graph.items() if wing_of(m) != "cli" and m not in TOP
                       and any(wing_of(d) == "cli" for d in deps))
    assert not offenders


def test_nothing_private_is_imported_across_modules():
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("meta_spliceai")):
                found += [f"{path.relative_to(SRC)}: {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not found, found


@pytest.mark.parametrize("name", meta_spliceai.__all__)
def test_public_api_names_resolve_with_docstrings(name):
    obj = getattr(meta_spliceai, name)
    if name != "__version__":
        assert (obj.__doc__ or "").strip(), f"meta_spliceai.{name} has no docstring"


def test_public_api_is_lazy_and_unknown_names_fail():
    code = ("import sys, meta_spliceai as ms; assert 'meta_spliceai.dataset.builder' not in sys.modules; "
            "ms.build; assert 'meta_spliceai.dataset.builder' in sys.modules; print(ms.build.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "meta_spliceai.dataset.builder"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        meta_spliceai.nope  # noqa: B018


def test_importing_main_module_runs_nothing(capsys):
    importlib.import_module("meta_spliceai.__main__")
    assert capsys.readouterr() == ("", "")


def test_py_typed_is_shipped():
    assert (SRC / "py.typed").is_file()
