"""The house's wiring: imports run one way (pyproject.toml's import-linter
contracts) and no import hides inside a function to dodge a cycle."""

import ast
import subprocess
import sys
from pathlib import Path

from django.conf import settings

APPS = ("core", "plans", "apikeys", "metering", "billing", "accounts", "saas", "api")


def test_the_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=settings.BASE_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:]


def _function_level_imports(path: Path):
    """First-party imports inside functions, but for AppConfig.ready(), where
    Django asks for them (models are not loaded before)."""
    for function in ast.walk(ast.parse(path.read_text())):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) or function.name == "ready":
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom):
                names = ["." if node.level else node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            if any(name == "." or name.split(".")[0] in APPS for name in names):
                yield f"{path}:{node.lineno} (in {function.name})"


def test_no_project_module_is_imported_inside_a_function():
    base = Path(settings.BASE_DIR)
    found = [
        where
        for app in APPS
        for path in sorted((base / app).rglob("*.py"))
        if "migrations" not in path.parts
        for where in _function_level_imports(path.relative_to(base))
    ]
    assert found == []
