"""Panels cannot be drawn headless, so check what they reference: every property and operator exists."""

from __future__ import annotations

import ast

import bpy
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.bpy42
PANELS = sorted((ROOT / "blender_addon" / "panels").glob("*.py"))


def _string_args(call: ast.Call) -> list[str]:
    return [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]


def test_panel_operators_exist(addon):
    missing = []
    for path in PANELS:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "operator":
                for idname in _string_args(node)[:1]:
                    category, name = idname.split(".")
                    try:  # bpy.ops hands out a wrapper for any name; only registered ones have an RNA type
                        getattr(getattr(bpy.ops, category), name).get_rna_type()
                    except KeyError:
                        missing.append(f"{path.name}: {idname}")
    assert not missing, missing


def test_main_panel_properties_exist(addon):
    names = set(bpy.types.Scene.bl_rna.properties["vitpose_mocap"].fixed_type.bl_rna.properties.keys())
    used = []
    nodes = [n for name in ("main_panel.py", "performers_panel.py")
             for n in ast.walk(ast.parse((ROOT / "blender_addon" / "panels" / name).read_text()))]
    for node in nodes:
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "prop" and \
                isinstance(node.args[0], ast.Name) and node.args[0].id == "settings":
            used += _string_args(node)[:1]
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "settings":
            used.append(node.attr)
    assert len(used) > 15
    assert not [u for u in used if u not in names], sorted(set(used) - names)


def test_main_panel_lives_in_the_mocap_tab(addon):
    from blender_addon.panels import main_panel

    panel = main_panel.MOCAP_PT_main
    assert (panel.bl_space_type, panel.bl_region_type, panel.bl_category) == ("VIEW_3D", "UI", "Mocap")
    assert panel.is_registered
