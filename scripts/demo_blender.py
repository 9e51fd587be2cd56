"""The Blender half of `make demo`: headless Blender (the `bpy` module) running the real add-on.

It registers the add-on, listens for pose packets on a UDP port, builds the capture rig from the
first packet's 3D joints, records every applied pose into a take, and when told to stop (a line
`stop` on stdin, or `--idle-timeout` seconds without packets after the first) writes the take as
`.blend`, `.fbx` and `.bvh` plus a rendered preview image, and prints one `SUMMARY {json}` line.

Timers never fire when Blender runs as a Python module, so this loop calls the add-on's tick
function itself, exactly as the timer would.

    python scripts/demo_blender.py --port 9000 --out out/
"""

from __future__ import annotations

import argparse
import json
import math
import select
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402
from mathutils import Vector  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon.core import export, recorder, rig, state, tick  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100.0 * len(ordered)) - 1))]


def stdin_says_stop() -> bool:
    """True when the orchestrator wrote `stop` (or closed our stdin)."""
    if not select.select([sys.stdin], [], [], 0)[0]:
        return False
    line = sys.stdin.readline()
    return line == "" or line.strip() == "stop"


def render_preview(scene: bpy.types.Scene, armature: bpy.types.Object, path: Path, frame: int) -> str:
    """A small Workbench render of the rig at `frame`, the camera framing the whole body."""
    scene.frame_set(frame)
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y = 640, 480
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(path)
    cam_data = bpy.data.cameras.new("PreviewCamera")
    cam = bpy.data.objects.new("PreviewCamera", cam_data)
    scene.collection.objects.link(cam)
    # Frame the body where the take has it at this frame (the root moves), not the armature's origin.
    bpy.context.view_layer.update()
    hips = armature.pose.bones.get("hips")
    centre = armature.matrix_world @ (hips.head if hips else Vector((0.0, 0.0, 0.9)))
    bpy.ops.mesh.primitive_plane_add(size=6.0, location=(centre.x, centre.y, 0.0))
    world = bpy.data.worlds.new("PreviewWorld")
    world.color = (0.25, 0.27, 0.3)
    scene.world = world
    # Three-quarter front view: the performer faces -Y, so the camera stands at -Y, a little to the side.
    cam.location = centre + Vector((2.2, -4.0, 0.6))
    cam.rotation_euler = (centre - cam.location).to_track_quat("-Z", "Y").to_euler()
    cam_data.lens = 35
    scene.camera = cam
    light = bpy.data.objects.new("PreviewLight", bpy.data.lights.new("PreviewLight", "SUN"))
    scene.collection.objects.link(light)
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "OBJECT"
    bpy.ops.render.render(write_still=True)
    return str(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=9000, help="UDP port to listen on (127.0.0.1)")
    ap.add_argument("--out", default="out", help="output folder")
    ap.add_argument("--name", default="demo", help="base name of the output files")
    ap.add_argument("--idle-timeout", type=float, default=0.0,
                    help="stop after this many seconds without packets once some arrived (0 = wait for 'stop')")
    ap.add_argument("--max-wait", type=float, default=600.0, help="give up if no packet arrives in this many s")
    ap.add_argument("--no-render", action="store_true", help="skip the preview render")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    scene = bpy.context.scene
    scene.render.fps = 30
    settings = scene.vitpose_mocap
    settings.port = args.port
    rx = state.start_receiver(scene.name, settings.host, settings.port)
    settings.status = "LISTENING"
    print(f"READY {args.port}", flush=True)

    latencies: list[float] = []
    tick_ms: list[float] = []
    take = None
    armature = None
    started = time.time()
    last_packet = None
    while True:
        if stdin_says_stop():
            break
        now = time.time()
        if last_packet is None and now - started > args.max_wait:
            print("demo_blender: no packet arrived; is the pose server sending to this port?", file=sys.stderr)
            break
        if args.idle_timeout and last_packet is not None and now - last_packet > args.idle_timeout:
            break
        if armature is None:
            # Size the capture rig from the first packet that carries 3D joints. Only peek at it: the
            # tick below takes and applies it like every later packet.
            packet = rx.peek_latest()
            if packet is None:
                time.sleep(tick.TICK_INTERVAL_S)
                continue
            last_packet = now
            person = tick.select_person(packet, settings.person_mode, settings.person_id)
            joints = person.get("joints_3d") if person else None
            if joints is None:
                tick.apply_tick(scene)  # nobody lifted in this frame yet: consumed with no target, nothing applied
                continue
            armature = rig.create_capture_rig(bpy.context, joints=joints)
            settings.target = armature
            take = recorder.TakeRecorder(armature, recorder.scene_fps(scene), scene.frame_start,
                                         recorder.next_take_name())
            state.set_recording(scene.name, take)
            settings.is_recording = True
        before = settings.applied
        t0 = time.time()
        tick.apply_tick(scene)
        t1 = time.time()
        if settings.applied != before:
            last_packet = t1
            tick_ms.append((t1 - t0) * 1000.0)
            # latency_ms is measured when the tick picked the packet up; add the rest of the tick.
            latencies.append(settings.latency_ms + (t1 - t0) * 1000.0)
        else:
            time.sleep(tick.TICK_INTERVAL_S)  # the same polling period as the add-on's timer in Blender

    # Last packets may still be in the socket: give the receiver a moment, then apply what is left.
    time.sleep(0.2)
    if armature is not None:
        tick.apply_tick(scene)
    stats = rx.stats()
    state.stop_receiver(scene.name)
    summary: dict = {"received": stats["received"], "invalid": stats["invalid"], "stale": stats["stale"],
                     "dropped_by_receiver": stats["dropped"], "applied": settings.applied}
    if take is None or not len(take):
        summary["error"] = "no pose was applied: nothing recorded"
        print("SUMMARY " + json.dumps(summary), flush=True)
        return 1
    state.set_recording(scene.name, None)
    settings.is_recording = False
    action = take.finish(armature)
    start, end = export.take_frame_range(action)
    files = {
        "blend": export.save_blend_copy(str(out / f"{args.name}.blend")),
        "fbx": export.export_fbx(scene, armature, action, str(out / f"{args.name}.fbx")),
        "bvh": export.export_bvh(scene, armature, action, str(out / f"{args.name}.bvh")),
    }
    if not args.no_render:
        files["preview"] = render_preview(scene, armature, out / f"{args.name}_rig.png", (start + end) // 2)
    summary.update({
        "action": action.name, "frame_start": start, "frame_end": end, "samples": len(take),
        "applied_latency_ms_p50": round(percentile(latencies, 50), 2),
        "applied_latency_ms_p95": round(percentile(latencies, 95), 2),
        "tick_ms_median": round(statistics.median(tick_ms), 3) if tick_ms else None,
        "files": {k: str(Path(v).resolve()) for k, v in files.items()},
    })
    print("SUMMARY " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    try:
        code = main()
    finally:
        # Blender 4.2 and 4.5 as a Python module crash (4.2) or hang (4.5) in their own teardown while an
        # add-on is still registered; 5.x exits either way.
        if hasattr(bpy.types.Scene, "vitpose_mocap"):
            blender_addon.unregister()
    sys.exit(code)
