"""Import an FBX in a fresh headless Blender and print, per bone of its first armature, the frames that carry keys,
and for every armature its Action and keyed frames (JSON).

Run as a script (`python tests/e2e/fbx_keys.py FILE.fbx [FRAME ...]`) so the import happens in its own
process, on whichever Blender the interpreter holds. For each FRAME it also prints the bones' world head
positions, so two Blenders' imports of one file can be compared.
"""

import json
import sys

import bpy

bpy.ops.wm.read_factory_settings(use_empty=True)
# anim_offset defaults to 1 frame; 0 keeps the exported frame numbers.
bpy.ops.import_scene.fbx(filepath=sys.argv[1], anim_offset=0.0)


def curves_of(action) -> list:
    curves = getattr(action, "fcurves", None)
    if curves is None or not len(curves):  # Blender 5: layered actions keep curves in channelbags
        curves = [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags
                  for fc in bag.fcurves]
    return list(curves)


def keyed_frames(action) -> dict[str, set]:
    frames: dict[str, set] = {}
    for fc in curves_of(action):
        if fc.data_path.startswith('pose.bones["'):
            bone = fc.data_path.split('"')[1]
            frames.setdefault(bone, set()).update(round(k.co[0]) for k in fc.keyframe_points)
    return frames


armatures = [o for o in bpy.data.objects if o.type == "ARMATURE"]
arm = armatures[0]
frames = keyed_frames(arm.animation_data.action)
heads = {}
for frame in (int(f) for f in sys.argv[2:]):
    bpy.context.scene.frame_set(frame)
    heads[frame] = {pb.name: list(arm.matrix_world @ pb.head) for pb in arm.pose.bones}
# Every armature of the file (several performers): its Action and the frames keyed on any of its bones.
every = {o.name: {"action": o.animation_data.action.name if o.animation_data and o.animation_data.action else None,
                  "frames": sorted(set().union(*keyed_frames(o.animation_data.action).values()))
                  if o.animation_data and o.animation_data.action else []}
         for o in armatures}
print("KEYS " + json.dumps({"version": bpy.app.version_string, "bones": [b.name for b in arm.data.bones],
                            "frames": {b: sorted(f) for b, f in frames.items()}, "heads": heads,
                            "armatures": every}))
