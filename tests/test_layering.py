"""Import direction (STYLE.md 2.4): lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"
FOUNDATION = {"models", "weekstats", "config", "errors"}
STAGES = {
    "market",
    "stats",
    "charts",
    "render",
    "headline",
    "compose",
    "delivery",
    "subscribers",
    "unsubscribe",
    "store",
    "lint",
    "quality",
    "notes",
    "archive",
}
DRIVERS = {"cli", "web", "schedule", "preview"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "newsletter":
            # `from newsletter import store`: the names that are modules of the package
            found.update(a.name for a in node.names if module_exists(a.name))
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("newsletter.")
        ):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith("newsletter.")
            )
    return found


def module_exists(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name / "__init__.py").is_file()


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def test_import_direction():
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        used = imports_of(path) - {name}
        if name in FOUNDATION:
            assert used <= FOUNDATION, f"{path.name} imports {used - FOUNDATION}"
        elif name in STAGES:
            bad = {u for u in used if u not in FOUNDATION}
            assert not bad, f"{path} imports stage/driver modules {bad}"
        elif name == "pipeline":
            assert not used & DRIVERS
    assert {module_name(p) for p in PACKAGE.rglob("*.py")} <= FOUNDATION | STAGES | DRIVERS | {
        "pipeline",
        "__init__",
        "__main__",
    }


def test_only_the_cli_reads_the_environment_or_prints():
    for path in PACKAGE.rglob("*.py"):
        if module_name(path) in {"cli", "__main__"}:
            continue
        text = path.read_text()
        assert "os.environ" not in text, path
        assert "getenv" not in text, path
        assert "datetime.now" not in text, path
        assert "print(" not in text, path
