"""The add-on imports only what every Blender ships: stdlib, bpy, mathutils, bl_* and itself."""

import ast
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.bpy42
ALLOWED_TOP = {"bpy", "mathutils"}


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            yield node.lineno, "__import__"  # dynamic imports hide dependencies


def test_every_import_is_stdlib_bpy_or_relative():
    files = sorted((ROOT / "blender_addon").rglob("*.py"))
    assert len(files) >= 10, files
    bad = []
    for path in files:
        for lineno, name in _imports(path):
            top = name.split(".")[0]
            ok = top in sys.stdlib_module_names or top in ALLOWED_TOP or top.startswith("bl_")
            if not ok:
                bad.append(f"{path.relative_to(ROOT)}:{lineno}: {name}")
    assert not bad, "non-Blender imports in the add-on:\n" + "\n".join(bad)
