"""The package's structure (docs/architecture.md): layers, no import cycles, a thin top.

The layer contracts themselves live in ``pyproject.toml`` (``[tool.importlinter]``) and are
checked here with import-linter, so breaking one fails the default test run; the rest is
read from grimp's import graph and the source files.
"""

import ast
import subprocess
import sys
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

import mosaik_bilevel

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(mosaik_bilevel.__file__).resolve().parent
#: Modules that may sit directly in the package's top folder.
MAX_TOP_LEVEL_MODULES = 6


def test_import_linter_contracts_are_kept(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True,
                        no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report
    assert report.count("KEPT") >= 2 and "BROKEN" not in report


def test_no_import_cycles_among_the_package_modules():
    graph = grimp.build_graph("mosaik_bilevel")
    modules = sorted(m for m in graph.modules if m.startswith("mosaik_bilevel."))
    assert len(modules) > 40  # the graph saw the whole package
    cycles = []
    for importer in modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            # the package's own __init__ re-exports; a cycle through it is not a layer cycle
            if imported.startswith("mosaik_bilevel.") and graph.chain_exists(
                    importer=imported, imported=importer):
                cycles.append((importer, imported))
    assert cycles == []


def test_the_package_top_is_thin():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert {"data", "cases", "model", "solvers", "results", "methods", "operation",
            "analysis"} <= folders


def _imports(path: Path) -> list[str]:
    """Absolute names of the modules a source file imports (relative ones resolved)."""
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.append(f"mosaik_bilevel.{path.parent.name}.{node.module or ''}")
            else:
                names.append(node.module or "")
    return names


def test_simulators_and_scenarios_sit_above_the_core_and_the_core_below_them():
    # simulators/ and scenarios/ are installed into the package from the repository's top
    # level (grimp does not see them): they may use any core layer, the core uses neither,
    # except the command line, which starts a simulation
    for folder in ("simulators", "scenarios"):
        for path in (ROOT / folder).glob("*.py"):
            for name in _imports(path):
                assert not name.startswith("mosaik_bilevel.cli"), (path, name)
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py":
            continue
        for name in _imports(path):
            assert ".simulators" not in name and ".scenarios" not in name, (path, name)


def test_importing_the_package_loads_neither_mosaik_nor_pandapower():
    code = ("import sys, mosaik_bilevel, mosaik_bilevel.api, mosaik_bilevel.methods.ldd_admm, "
            "mosaik_bilevel.analysis.report, mosaik_bilevel.operation.market_operator; "
            "print(sorted(m for m in ('mosaik', 'mosaik_api_v3', 'pandapower') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    # the AC check loads pandapower when it runs, not when the package is imported
    assert out.strip() == "[]"
    first = subprocess.run([sys.executable, "-c", "import sys, mosaik_bilevel; print("
                            "'pandapower' in sys.modules, 'mosaik' in sys.modules)"],
                           capture_output=True, text=True, check=True).stdout
    assert first.split() == ["False", "False"]
