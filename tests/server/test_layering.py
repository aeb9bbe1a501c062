"""Imports flow one way: examples -> server -> cqrs. The framework never imports an example app."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# package -> top-level packages of this project it must not import
FORBIDDEN = {"server": {"examples"}, "cqrs": {"examples", "server"}}


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports: import statements and literal importlib/__import__ calls."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and (
                getattr(node.func, "attr", None) == "import_module"
                or getattr(node.func, "id", None) == "__import__"
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_package_above_it(package: str) -> None:
    sources = sorted((ROOT / package).rglob("*.py"))
    assert sources
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sources
        for name in _imported_modules(path)
        if name.split(".")[0] in FORBIDDEN[package]
    }
    assert not wrong, sorted(wrong)


def test_the_scan_sees_an_import_of_the_demo(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import examples.files\nfrom examples.files.app import create_app\n"
        "import importlib\nimportlib.import_module('examples.files')\n"
    )
    assert _imported_modules(module) == {"examples.files", "examples.files.app", "importlib"}


def test_importing_every_server_module_loads_no_example() -> None:
    """At run time too: every module of server/ (and the CLI's main path) imported, no examples.* loaded."""
    probe = (
        "import importlib, pkgutil, sys, server\n"
        "for info in pkgutil.walk_packages(server.__path__, 'server.'):\n"
        "    if info.name != 'server.__main__':\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'examples'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
