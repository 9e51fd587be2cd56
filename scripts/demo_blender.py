"""The Blender half of `make demo`: headless Blender (the `bpy` module) running the real add-on.

It registers the add-on, listens for pose packets on a UDP port, builds the capture rig from the
first packet's 3D joints, records every applied pose into a take, and when told to stop (a line
`stop` on stdin, or `--idle-timeout` seconds without packets after the first) writes the take as
`.blend`, `.fbx` and `.bvh` plus a rendered preview image (and, with --frames-dir, every frame of the
take rendered small), and prints one `SUMMARY {json}` line.

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


class FollowOnePerformer:
    """Drive the rig from one track id, the person it was sized from, instead of whoever is largest in each packet
    (with two people in the shot, "largest" flips between them and the take becomes two performers cut together).
    After `patience` packets without that person (the track was lost), follow the largest lifted person instead."""

    def __init__(self, settings, person_id: int, patience: int = 30) -> None:
        self.settings = settings
        settings.person_mode = "ID"
        settings.person_id = person_id
        self.patience = patience
        self.missing = 0
        self.switches = 0
        self.seq = None

    def update(self, packet: dict | None) -> None:
        if packet is None or packet.get("seq") == self.seq:
            return
        self.seq = packet.get("seq")
        lifted = [p for p in packet.get("people") or [] if p.get("joints_3d")]
        if any(p["id"] == self.settings.person_id for p in lifted):
            self.missing = 0
            return
        self.missing += 1
        if self.missing > self.patience and lifted:
            self.settings.person_id = tick.select_person({"people": lifted}, "LARGEST")["id"]
            self.missing = 0
            self.switches += 1


def hips_path(scene: bpy.types.Scene, armature: bpy.types.Object, start: int, end: int) -> list[Vector]:
    """World positions of the hips over the take (a dozen samples), to frame the camera on the whole motion."""
    hips = armature.pose.bones.get("hips")
    points = []
    for frame in sorted({round(start + (end - start) * k / 11) for k in range(12)}):
        scene.frame_set(frame)
        points.append(armature.matrix_world @ (hips.head if hips else Vector((0.0, 0.0, 0.9))))
    return points


def add_checker_floor(scene: bpy.types.Scene, centre: Vector, half: float, tile: float = 0.5) -> None:
    """A floor of 0.5 m tiles in two shades (two objects, Workbench's object colours): sliding feet and the
    root's travel show against it."""
    n = int(math.ceil(half / tile))
    x0, y0 = round(centre.x / tile) * tile - n * tile, round(centre.y / tile) * tile - n * tile
    for parity, shade in ((0, 0.42), (1, 0.30)):
        verts, faces = [], []
        for i in range(2 * n):
            for j in range(2 * n):
                if (i + j) % 2 != parity:
                    continue
                x, y = x0 + i * tile, y0 + j * tile
                base = len(verts)
                verts += [(x, y, 0.0), (x + tile, y, 0.0), (x + tile, y + tile, 0.0), (x, y + tile, 0.0)]
                faces.append((base, base + 1, base + 2, base + 3))
        mesh = bpy.data.meshes.new(f"PreviewFloor{parity}")
        mesh.from_pydata(verts, [], faces)
        obj = bpy.data.objects.new(f"PreviewFloor{parity}", mesh)
        obj.color = (shade, shade, shade, 1.0)
        scene.collection.objects.link(obj)


def setup_preview_scene(scene: bpy.types.Scene, armature: bpy.types.Object, start: int, end: int) -> None:
    """Workbench, a floor, a sun, and a camera that sees the whole take from near the video camera's side."""
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.image_settings.file_format = "PNG"
    path = hips_path(scene, armature, start, end)
    centre = sum(path, Vector()) / len(path)
    spread = max((p - centre).length for p in path)
    add_checker_floor(scene, centre, 4.0 + spread)
    world = bpy.data.worlds.new("PreviewWorld")
    world.color = (0.25, 0.27, 0.3)
    scene.world = world
    cam_data = bpy.data.cameras.new("PreviewCamera")
    cam = bpy.data.objects.new("PreviewCamera", cam_data)
    scene.collection.objects.link(cam)
    # The performer faces -Y (towards the video's camera): stand at -Y too, a little to the side so depth shows.
    # The camera rides along with the hips (a fixed offset, fixed orientation) so the body stays large in the
    # frame wherever the take goes; the floor's grid shows the root's travel.
    offset = Vector((1.4, -3.4, 0.35))
    cam.location = offset
    cam.rotation_euler = (-offset).to_track_quat("-Z", "Y").to_euler()
    follow = cam.constraints.new("COPY_LOCATION")
    follow.target = armature
    follow.subtarget = "hips" if armature.pose.bones.get("hips") else ""
    follow.use_offset = True
    cam_data.lens = 35
    scene.camera = cam
    light = bpy.data.objects.new("PreviewLight", bpy.data.lights.new("PreviewLight", "SUN"))
    scene.collection.objects.link(light)
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "OBJECT"


def render_preview(scene: bpy.types.Scene, path: Path, frame: int) -> str:
    """One 640x480 Workbench render of the rig at `frame`."""
    scene.frame_set(frame)
    scene.render.resolution_x, scene.render.resolution_y = 640, 480
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return str(path)


def render_frames(scene: bpy.types.Scene, folder: Path, start: int, end: int, size: tuple[int, int]) -> str:
    """Every frame of the take, small, as folder/rig_NNNN.png (for the demo's side-by-side video)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("rig_*.png"):
        old.unlink()
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.frame_start, scene.frame_end = start, end
    scene.render.filepath = str(folder / "rig_####")
    bpy.ops.render.render(animation=True)
    return str(folder)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=9000, help="UDP port to listen on (127.0.0.1)")
    ap.add_argument("--out", default="out", help="output folder")
    ap.add_argument("--name", default="demo", help="base name of the output files")
    ap.add_argument("--idle-timeout", type=float, default=0.0,
                    help="stop after this many seconds without packets once some arrived (0 = wait for 'stop')")
    ap.add_argument("--max-wait", type=float, default=600.0, help="give up if no packet arrives in this many s")
    ap.add_argument("--no-render", action="store_true", help="skip the preview render")
    ap.add_argument("--frames-dir", default=None,
                    help="also render every frame of the take (320x240) into this folder, for out/compare.mp4")
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
            try:
                armature = rig.create_capture_rig(bpy.context, joints=joints)
            except ValueError as exc:  # a first lifted frame that is no standing person (e.g. random weights)
                print(f"demo_blender: {exc}; using the default proportions", flush=True)
                armature = rig.create_capture_rig(bpy.context)
            settings.target = armature
            follow = FollowOnePerformer(settings, person["id"])
            take = recorder.TakeRecorder(armature, recorder.scene_fps(scene), scene.frame_start,
                                         recorder.next_take_name())
            state.set_recording(scene.name, take)
            settings.is_recording = True
        follow.update(rx.peek_latest())
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
        # Play the take itself: the capture rig's IK constraints still hold the last live pose, so without
        # muting them (as the exporters do) every render showed that one pose.
        with export._take_only(scene, armature, action):
            setup_preview_scene(scene, armature, start, end)
            files["preview"] = render_preview(scene, out / f"{args.name}_rig.png", (start + end) // 2)
            if args.frames_dir:
                files["rig_frames"] = render_frames(scene, Path(args.frames_dir), start, end, (320, 240))
    summary.update({
        "action": action.name, "frame_start": start, "frame_end": end, "samples": len(take),
        "take_t0": take.times[0], "fps": scene.render.fps, "performer_switches": follow.switches,
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
