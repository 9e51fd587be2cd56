"""The extension zip holds exactly the add-on, passes Blender's own manifest validator and works unpacked."""

from __future__ import annotations

import importlib
import json
import os
import shutil
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


def blender_extension_command(*args: str) -> int:
    """What `blender --command extension ARGS` runs, called in this bpy module (which has no `blender` binary):
    the bundled extension add-on's CLI handler, with Blender's own list of valid tags."""
    from bl_pkg import bl_extension_cli

    return bl_extension_cli.cli_extension_handler(list(args))


def test_blenders_extension_validate_accepts_it(built, capsys):
    assert blender_extension_command("validate", str(built)) == 0
    assert "Success" in capsys.readouterr().out


def test_blenders_extension_validate_is_the_strict_one(tmp_path, capsys):
    # The standalone blender_ext.py accepts any tag; Blender's command checks them against its own list.
    bad = tmp_path / "bad"
    shutil.copytree(ROOT / "blender_addon", bad, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = bad / "blender_manifest.toml"
    manifest.write_text(manifest.read_text().replace('"Rigging"', '"Mocap"'))
    assert blender_extension_command("validate", str(bad)) != 0
    assert 'invalid tag "Mocap"' in capsys.readouterr().out


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


def test_install_from_disk_enables_it_and_the_installed_copy_drives_a_rig(built, tmp_path, free_port):
    # Blender's own Install from Disk, in a separate Blender whose user folders are a temporary directory.
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender_user")}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "addon" / "install_extension.py"), str(built),
                           str(free_port)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert proc.returncode == 0 and line, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(line[7:])
    assert r["version"] == bpy.app.version_string
    assert r["install"] == ["FINISHED"]
    assert r["enabled"] == [True, True]  # (enabled by default, loaded)
    assert r["package_file"].startswith(str(tmp_path / "blender_user"))  # the installed copy, not the source tree
    sources = {f"vitpose_mocap/{p.relative_to(ROOT / 'blender_addon').as_posix()}"
               for p in (ROOT / "blender_addon").rglob("*.py") if "__pycache__" not in p.parts}
    assert set(r["installed_files"]) == sources
    assert r["start"] == r["create_rig"] == r["stop"] == ["FINISHED"]
    assert r["applied"] == 1 and r["target_bones"] > 10
    assert r["after_disable"] == [[False, False], False]
    assert r["after_enable"] == [[True, True], True]


def test_bl_info_says_what_the_manifest_says():
    import tomllib

    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    assert ".".join(map(str, blender_addon.bl_info["version"])) == manifest["version"]
    assert ".".join(map(str, blender_addon.bl_info["blender"])) == manifest["blender_version_min"]
    assert blender_addon.bl_info["name"] == manifest["name"]
