"""The package's shape: who may import whom (docs/architecture.md), and small modules.

Every module belongs to one layer, named by its first part under newsletter/:
- foundation (errors, config, models, weekstats) imports only the foundation;
- a stage (market, stats, issue, mail, delivery, db) imports the foundation and itself only;
- the application layer (app) imports stages and the foundation, never a driver;
- drivers (cli, schedule, web) import the application layer and the foundation; the CLI, the
  entry point, also starts the other drivers.
Imports under TYPE_CHECKING count too: a type is a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"
FOUNDATION = {"errors", "config", "models", "weekstats"}
STAGES = {"market", "stats", "issue", "mail", "delivery", "db"}
APP = {"app"}
DRIVERS = {"cli", "schedule", "web"}
ENTRY = {"__init__", "__main__"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
DECLARATIVE = {"cli/parser.py"}
"""Modules that are tables (argument parsers): their functions may run long."""


def imports_of(path: Path) -> set[str]:
    """The package's top-level parts that `path` imports."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "newsletter":
            found.update(alias.name for alias in node.names if alias.name != "__version__")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("newsletter."):
            found.add(str(node.module).split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(
                alias.name.split(".")[1]
                for alias in node.names
                if alias.name.startswith("newsletter.")
            )
    return found


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


MODULES = sorted(PACKAGE.rglob("*.py"))
ALLOWED = {
    **{name: FOUNDATION for name in FOUNDATION},
    **{name: FOUNDATION | {name} for name in STAGES},
    "app": FOUNDATION | STAGES | APP,
    "cli": FOUNDATION | APP | DRIVERS,
    "schedule": FOUNDATION | APP | {"schedule"},
    "web": FOUNDATION | APP | {"web"},
    "__init__": set(),
    "__main__": {"cli"},
}


def test_every_module_belongs_to_one_layer():
    layers = {layer_of(path) for path in MODULES}
    assert layers <= FOUNDATION | STAGES | APP | DRIVERS | ENTRY, layers - ALLOWED.keys()
    assert not FOUNDATION & STAGES & APP & DRIVERS


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path):
    layer = layer_of(path)
    bad = imports_of(path) - ALLOWED[layer]
    assert not bad, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(bad)}"


def test_the_layering_rules_catch_a_driver_reaching_into_a_stage(tmp_path):
    """The rule itself can fail: a driver importing a stage is reported."""
    module = tmp_path / "driver.py"
    module.write_text("from newsletter.db.ledger import claim\nimport newsletter.issue.render\n")
    assert imports_of(module) - ALLOWED["web"] == {"db", "issue"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_small(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path} is over {MAX_MODULE_LINES} lines"
    if str(path.relative_to(PACKAGE)) in DECLARATIVE:
        return
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, (
                f"{path.name}:{node.lineno} {node.name} is {length} lines"
            )


def test_only_the_cli_reads_the_environment_or_prints():
    for path in MODULES:
        if layer_of(path) in {"cli", "__main__"}:
            continue
        text = path.read_text()
        assert "os.environ" not in text, path
        assert "getenv" not in text, path
        assert "datetime.now" not in text, path
        assert "print(" not in text, path
