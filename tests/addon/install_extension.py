"""Install the extension zip with Blender's own "Install from Disk" operator and use the installed copy.

Run in its own process (`python tests/addon/install_extension.py ZIP PORT`) with BLENDER_USER_RESOURCES
pointing at an empty folder, so the user's own Blender configuration is never touched. It installs and
enables the zip into the "user_default" repository, drives a capture rig with one packet through the
installed copy (`bl_ext.user_default.vitpose_mocap`, not the source tree), disables and enables it again,
and prints one `RESULT {json}` line.
"""

import json
import socket
import sys
import time
from pathlib import Path

import bpy

MODULE = "bl_ext.user_default.vitpose_mocap"
import addon_utils  # noqa: E402  (on sys.path once bpy is imported)

zip_path, port = sys.argv[1], int(sys.argv[2])
result: dict = {"version": bpy.app.version_string}
repo = next(r for r in bpy.context.preferences.extensions.repos if r.module == "user_default")
result["install"] = sorted(bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True))
result["installed_files"] = sorted(p.relative_to(repo.directory).as_posix()
                                   for p in Path(repo.directory, "vitpose_mocap").rglob("*.py"))
result["enabled"] = list(addon_utils.check(MODULE))
pkg = sys.modules[MODULE]
result["package_file"] = pkg.__file__

# One packet through the installed copy: start the receiver, size the rig from the waiting packet, apply it.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.addon.packets import encode, make_packet  # noqa: E402  (json and math only)

scene = bpy.context.scene
settings = scene.vitpose_mocap
settings.port = port
result["start"] = sorted(bpy.ops.vitpose_mocap.start())
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.sendto(encode(make_packet(0, time.time())), ("127.0.0.1", port))
rx = pkg.core.state.receiver(scene)
deadline = time.monotonic() + 5.0
while rx.peek_latest() is None and time.monotonic() < deadline:
    time.sleep(0.01)
result["create_rig"] = sorted(bpy.ops.vitpose_mocap.create_capture_rig())
pkg.core.tick.apply_tick(scene)
result["applied"] = settings.applied
result["target_bones"] = len(settings.target.data.bones) if settings.target else 0
result["stop"] = sorted(bpy.ops.vitpose_mocap.stop())

bpy.ops.preferences.addon_disable(module=MODULE)
result["after_disable"] = [list(addon_utils.check(MODULE)), hasattr(bpy.types.Scene, "vitpose_mocap")]
bpy.ops.preferences.addon_enable(module=MODULE)
result["after_enable"] = [list(addon_utils.check(MODULE)), hasattr(bpy.types.Scene, "vitpose_mocap")]
bpy.ops.preferences.addon_disable(module=MODULE)  # Blender 4.2/4.5 modules must not exit with it registered
print("RESULT " + json.dumps(result), flush=True)
