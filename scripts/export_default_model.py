"""Export the add-on's capture rig (armature + skinned box body, default proportions) as glTF binary.

    .venv/bin/python scripts/export_default_model.py [--out resources/models/default_model.glb]
        [--packet packet.json]   # size the rig from the first person's joints_3d of a saved packet

Runs Blender as a Python module (bpy) and the glTF exporter that ships with it (io_scene_gltf2).
The IK empties are not exported: glTF has no constraints, so the file holds the rest pose.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402, I001  (bpy first: it puts addon_utils on the path)
import addon_utils  # noqa: E402

from blender_addon.core import rig  # noqa: E402


def joints_from_packet(path: Path) -> list:
    packet = json.loads(path.read_text(encoding="utf-8"))
    for person in packet.get("people", []):
        if person.get("joints_3d"):
            return person["joints_3d"]
    raise SystemExit(f"{path}: no person with joints_3d; pass a packet from a server that lifts to 3D")


def export(out: Path, joints: list | None = None) -> Path:
    """Build the capture rig in an empty scene and write it to `out` (.glb)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("io_scene_gltf2", default_set=False)
    obj = rig.create_capture_rig(bpy.context, joints, name="CaptureRig")
    # Keep the armature and its body only (the exporter's use_selection drops the skinned mesh), in rest pose.
    for other in list(obj.children):
        if other.type == "EMPTY":
            bpy.data.objects.remove(other)
    for pb in obj.pose.bones:
        for con in list(pb.constraints):
            pb.constraints.remove(con)
        pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.export_scene.gltf(filepath=str(out), export_format="GLB", export_animations=False, export_skins=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "models" / "default_model.glb")
    parser.add_argument("--packet", type=Path, help="JSON pose packet to take the proportions from")
    args = parser.parse_args(argv)
    joints = joints_from_packet(args.packet) if args.packet else None
    path = export(args.out, joints)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
