"""The extension zip holds exactly the add-on, passes Blender's own manifest validator and works unpacked."""

from __future__ import annotations

import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import bpy
import pytest

import blender_addon
from tests.conftest import ROOT

pytestmark = pytest.mark.bpy42
sys.path.insert(0, str(ROOT / "scripts"))
import build_addon  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_addon.build(out_dir=tmp_path_factory.mktemp("dist"))


def test_zip_holds_only_the_addon_files(built):
    assert built.name == "vitpose_mocap-0.1.0.zip"
    names = set(zipfile.ZipFile(built).namelist())
    assert "blender_manifest.toml" in names and "__init__.py" in names
    sources = {p.relative_to(ROOT / "blender_addon").as_posix() for p in (ROOT / "blender_addon").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert sources <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(("tests/", "."))]
    assert {Path(n).suffix for n in names} <= {".py", ".toml", ".json"}


def test_blenders_extension_validator_accepts_it(built):
    cli = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    assert cli.is_file(), cli
    result = subprocess.run([sys.executable, str(cli), "validate", str(built)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_unpacked_zip_registers_on_its_own(built, addon, tmp_path):
    zipfile.ZipFile(built).extractall(tmp_path / "vitpose_mocap_from_zip")
    sys.path.insert(0, str(tmp_path))
    blender_addon.unregister()
    try:
        pkg = importlib.import_module("vitpose_mocap_from_zip")
        pkg.register()
        bpy.ops.wm.read_factory_settings(use_empty=True)
        assert bpy.context.scene.vitpose_mocap.port == 9000
        assert pkg.rig_properties.RigSettings.is_registered
        pkg.unregister()
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("vitpose_mocap_from_zip")]:
            del sys.modules[name]
        blender_addon.register()
