"""Imports go one way: core -> models -> tasks -> flows -> app. Read from the sources
(every import statement, inside functions too), so a lazy import cannot hide."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Each layer and the top-level packages it must never import.
FORBIDDEN = {
    "src/xrdmap": ("prefect", "prefect_dask", "flows", "tasks", "models", "app"),
    "models": ("prefect", "prefect_dask", "flows", "tasks", "app"),
    "tasks": ("flows", "app"),
    "flows": ("app",),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) of every import statement in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_a_layer_above_it(layer):
    sources = sorted((REPO / layer).rglob("*.py"))
    assert len(sources) >= 3, f"{layer}: no sources found"
    bad = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sources
        for line, module in imported_modules(path)
        if module in FORBIDDEN[layer]
    ]
    assert not bad, "\n".join(bad)


def test_a_lazy_import_is_caught(tmp_path):
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from flows.predict import predict_store\n")
    assert imported_modules(source) == [(2, "flows")]


@pytest.mark.slow  # over 5 s: not in make test-fast
def test_importing_the_core_and_the_models_loads_no_prefect():
    code = (
        "import importlib, pkgutil, sys, xrdmap, models\n"
        "for pkg in (xrdmap, models):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n == 'prefect' or n.startswith('prefect.'))\n"
        "print(len(list(pkgutil.walk_packages(xrdmap.__path__, 'xrdmap.'))))\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 8  # really walked the modules
