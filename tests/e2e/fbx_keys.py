"""Import an FBX in a fresh headless Blender and print, per bone, the frames that carry keys (JSON).

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
arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
action = arm.animation_data.action
curves = getattr(action, "fcurves", None)
if curves is None or not len(curves):  # Blender 5: layered actions keep curves in channelbags
    curves = [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags
              for fc in bag.fcurves]
frames: dict[str, set] = {}
for fc in curves:
    if fc.data_path.startswith('pose.bones["'):
        bone = fc.data_path.split('"')[1]
        frames.setdefault(bone, set()).update(round(k.co[0]) for k in fc.keyframe_points)
heads = {}
for frame in (int(f) for f in sys.argv[2:]):
    bpy.context.scene.frame_set(frame)
    heads[frame] = {pb.name: list(arm.matrix_world @ pb.head) for pb in arm.pose.bones}
print("KEYS " + json.dumps({"version": bpy.app.version_string, "bones": [b.name for b in arm.data.bones],
                            "frames": {b: sorted(f) for b, f in frames.items()}, "heads": heads}))
