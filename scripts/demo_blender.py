"""The Blender half of `make demo`: headless Blender (the `bpy` module) running the real add-on.

It registers the add-on, listens for pose packets on a UDP port, builds a capture rig for each tracked
person (up to --performers) from their first 3D joints and binds it to the person's track id, records
every applied pose of every performer into one take (an Action per performer), and when told to stop
(a line `stop` on stdin, or `--idle-timeout` seconds without packets after the first) writes the take
as `.blend`, `.fbx` (every performer) and one `.bvh` per performer (`demo_P0.bvh`, ...) plus a rendered
preview image (and, with --frames-dir, every frame of the take rendered small), and prints one
`SUMMARY {json}` line that lists each performer with its frames and packets.

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
from blender_addon.core import export, performers, recorder, state, tick  # noqa: E402


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


class Cast:
    """The demo's performers: a capture rig per person, created (and bound to the person's track id) the first time
    a lifted person appears, up to `limit` rigs; the demo is the one asking for them. The add-on's "Hand over lost
    performers" passes a rig whose id has been missing for `patience` packets to a lifted id nobody is bound to:
    the tracker lost that person and found them again under a new id (without it, "largest" or a new rig per new
    id would cut two performers together or fill the scene with rigs). Takes are added as rigs are created: a late
    performer starts later in the take."""

    def __init__(self, scene: bpy.types.Scene, limit: int, patience: int = 30) -> None:
        self.scene, self.settings, self.limit = scene, scene.vitpose_mocap, limit
        self.settings.handover, self.settings.handover_after = True, patience
        self.track_ids: dict[str, list[int]] = {}  # armature name -> the ids it followed, in order
        self.seq = None

    @property
    def switches(self) -> int:
        return sum(len(ids) - 1 for ids in self.track_ids.values())

    def update(self, packet: dict | None) -> None:
        """Before a tick: rigs for new people in the packet waiting for it (up to the limit)."""
        if packet is None or packet.get("seq") == self.seq:
            return
        self.seq = packet.get("seq")
        for person in performers.unbound_people(self.settings, packet):
            if len(self.settings.bindings) >= self.limit:
                break
            self.add(person)

    def note_handovers(self) -> None:
        """After a tick: remember the ids each rig followed."""
        for binding in self.settings.bindings:
            ids = self.track_ids[binding.armature.name]
            if ids[-1] != binding.track_id:
                ids.append(binding.track_id)

    def add(self, person: dict) -> bpy.types.Object:
        obj, sized = performers.create_rig_for(bpy.context, person)
        if not sized:  # a first lifted frame that is no standing person (e.g. random weights)
            print(f"demo_blender: track {person['id']} does not look like a standing person yet; "
                  "its rig has the default proportions", flush=True)
        performers.bind(self.settings, person["id"], obj)
        self.track_ids[obj.name] = [person["id"]]
        if not state.recording(self.scene):  # the first rig starts the take; later ones join it at the next tick
            state.set_recording(self.scene, recorder.performer_takes(self.scene, [(person["id"], obj)]))  # (join_take)
            self.settings.is_recording = True
        return obj


def hips_path(scene: bpy.types.Scene, armatures: list[bpy.types.Object], start: int,
              end: int) -> list[tuple[int, list[Vector]]]:
    """(frame, world position of every armature's hips) over the take, a dozen frames: to frame the camera."""
    path = []
    for frame in sorted({round(start + (end - start) * k / 11) for k in range(12)}):
        scene.frame_set(frame)
        path.append((frame, [a.matrix_world @ (a.pose.bones["hips"].head if a.pose.bones.get("hips")
                                               else Vector((0, 0, 0.9))) for a in armatures]))
    return path


def lowest_points(scene: bpy.types.Scene, armatures: list[bpy.types.Object], frames: list[int]) -> list[list[float]]:
    """Per armature, per frame: the height of its lowest bone point (its feet, mostly)."""
    lows: list[list[float]] = [[] for _ in armatures]
    for frame in frames:
        scene.frame_set(frame)
        for low, a in zip(lows, armatures, strict=True):
            low.append(min(min((a.matrix_world @ b.head).z, (a.matrix_world @ b.tail).z) for b in a.pose.bones))
    return lows


def add_checker_floor(scene: bpy.types.Scene, centre: Vector, half: float, tile: float = 0.5, z: float = 0.0) -> None:
    """A floor of 0.5 m tiles at height z in two shades (two objects, Workbench's object colours): sliding feet and
    the root's travel show against it."""
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
                verts += [(x, y, z), (x + tile, y, z), (x + tile, y + tile, z), (x, y + tile, z)]
                faces.append((base, base + 1, base + 2, base + 3))
        mesh = bpy.data.meshes.new(f"PreviewFloor{parity}")
        mesh.from_pydata(verts, [], faces)
        obj = bpy.data.objects.new(f"PreviewFloor{parity}", mesh)
        obj.color = (shade, shade, shade, 1.0)
        scene.collection.objects.link(obj)


def setup_preview_scene(scene: bpy.types.Scene, armatures: list[bpy.types.Object], start: int, end: int) -> None:
    """Workbench, a floor, a sun, and a camera that sees the whole take from near the video camera's side."""
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.image_settings.file_format = "PNG"
    path = hips_path(scene, armatures, start, end)
    points = [p for _frame, hips in path for p in hips]
    centre = sum(points, Vector()) / len(points)
    spread = max((p - centre).length for p in points)
    # The performers share one world frame whose Z = 0 is the first one's floor: the ground goes under the lowest
    # floor, and a performer standing higher (the man on the hut's roof) gets a platform where it stands on it.
    lows = lowest_points(scene, armatures, [frame for frame, _hips in path])
    floors = [sorted(low)[len(low) // 2] for low in lows]
    add_checker_floor(scene, centre, 4.0 + spread, z=min(floors))
    for n, z in enumerate(floors):
        mine = [hips[n] for (_frame, hips), low in zip(path, lows[n], strict=True) if abs(low - z) < 0.3]
        if z - min(floors) > 0.3 and mine:
            middle = sum(mine, Vector()) / len(mine)
            add_checker_floor(scene, middle, 1.0 + max((p - middle).xy.length for p in mine), z=z)
    world = bpy.data.worlds.new("PreviewWorld")
    world.color = (0.25, 0.27, 0.3)
    scene.world = world
    cam_data = bpy.data.cameras.new("PreviewCamera")
    cam = bpy.data.objects.new("PreviewCamera", cam_data)
    scene.collection.objects.link(cam)
    # The performers face -Y (towards the video's camera): stand at -Y too, a little to the side so depth shows.
    # The camera rides along with the hips (their mean: fixed orientation) so the bodies stay large in the frame
    # wherever the take goes; the floor's grid shows the root's travel.
    centre_empty = bpy.data.objects.new("PreviewCentre", None)
    scene.collection.objects.link(centre_empty)
    for n, armature in enumerate(armatures):
        follow = centre_empty.constraints.new("COPY_LOCATION")
        follow.target = armature
        follow.subtarget = "hips" if armature.pose.bones.get("hips") else ""
        follow.influence = 1.0 / (n + 1)  # a running mean: the n-th constraint moves 1/(n+1) of the way
    cam.parent = centre_empty
    base = Vector((1.4, -3.4, 0.35))
    cam.rotation_euler = (-base).to_track_quat("-Z", "Y").to_euler()
    # The camera backs off as the performers stand further apart (keyed along the take) to keep them in the picture.
    for frame, hips in path:
        cam.location = base * (1.0 + 0.45 * max((a - b).length for a in hips for b in hips))
        cam.keyframe_insert("location", frame=frame)
    cam_data.lens = 35
    scene.camera = cam
    for armature in armatures:
        hide_outside_take(armature, start, end)
    light = bpy.data.objects.new("PreviewLight", bpy.data.lights.new("PreviewLight", "SUN"))
    scene.collection.objects.link(light)
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "OBJECT"


def hide_outside_take(armature: bpy.types.Object, start: int, end: int) -> None:
    """Keep a performer's body out of the renders before its first and after its last key: it was not in the shot,
    and its held pose would stand there as a ghost. (Armatures do not render; their body meshes do. Keying the
    armature itself would add a curve to its take.)"""
    action = armature.animation_data.action if armature.animation_data else None
    if action is None:
        return
    first, last = export.take_frame_range(action)
    for obj in (c for c in armature.children if c.type == "MESH"):
        for frame, hidden in ((start, first > start), (first, False), (last + 1, last < end)):
            obj.hide_render = hidden
            obj.keyframe_insert("hide_render", frame=frame)


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
    ap.add_argument("--performers", type=int, default=2,
                    help="capture rigs to create, one per tracked person as they appear (each records its own take)")
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
    rx = state.start_receiver(scene, settings.host, settings.port)
    settings.status = "LISTENING"
    print(f"READY {args.port}", flush=True)

    latencies: list[float] = []  # capture (the packet's timestamp) -> applied
    handoff: list[float] = []  # sent (the packet's `sent`) -> applied: Blender's own share
    tick_ms: list[float] = []
    cast = Cast(scene, args.performers)
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
        # Peek at the newest packet to create or re-bind rigs first: the tick below takes and applies it.
        waiting = rx.peek_latest()
        if waiting is not None and last_packet is None:
            last_packet = now
        cast.update(waiting)
        before = settings.applied
        t0 = time.time()
        tick.apply_tick(scene)
        t1 = time.time()
        cast.note_handovers()
        if settings.applied != before:
            last_packet = t1
            tick_ms.append((t1 - t0) * 1000.0)
            # latency_ms is measured when the tick picked the packet up; add the rest of the tick.
            latencies.append(settings.latency_ms + (t1 - t0) * 1000.0)
            newest = state.last_taken_packet(scene)
            if newest is not None and isinstance(newest.get("sent"), (int, float)):
                handoff.append((t1 - newest["sent"]) * 1000.0)
        else:
            time.sleep(tick.TICK_INTERVAL_S)  # the same polling period as the add-on's timer in Blender

    # Last packets may still be in the socket: give the receiver a moment, then apply what is left.
    time.sleep(0.2)
    tick.apply_tick(scene)
    cast.note_handovers()
    stats = rx.stats()
    state.stop_receiver(scene)
    summary: dict = {"received": stats["received"], "invalid": stats["invalid"], "stale": stats["stale"],
                     "dropped_by_receiver": stats["dropped"], "applied": settings.applied}
    takes = state.recording(scene) or []
    state.set_recording(scene, None)
    settings.is_recording = False
    actions = recorder.finish_takes(settings, takes)
    if not actions:
        summary["error"] = "no pose was applied: nothing recorded"
        print("SUMMARY " + json.dumps(summary), flush=True)
        return 1
    parts = [(p.performer, p.armature, p.action) for p in settings.take_parts]
    start, end = export.takes_frame_range(actions)
    bvh = export.export_bvh_take(scene, parts, str(out / f"{args.name}.bvh"))
    files = {
        "blend": export.save_blend_copy(str(out / f"{args.name}.blend"), scene, [(o, a) for _p, o, a in parts]),
        "fbx": export.export_fbx_take(scene, [(o, a) for _p, o, a in parts], str(out / f"{args.name}.fbx"),
                                      settings.last_take),
        "bvh": bvh[0],
    }
    if not args.no_render:
        # Play the takes themselves: the capture rigs' IK constraints still hold the last live pose, so without
        # muting them (as the exporters do) every render showed that one pose.
        with export.playing_takes(scene, [(o, a) for _p, o, a in parts]):
            setup_preview_scene(scene, [o for _p, o, _a in parts], start, end)
            files["preview"] = render_preview(scene, out / f"{args.name}_rig.png", (start + end) // 2)
            if args.frames_dir:
                files["rig_frames"] = render_frames(scene, Path(args.frames_dir), start, end, (320, 240))
    by_armature = {t.armature_name: t for t in takes}
    performer_list = []
    for (label, obj, action), path in zip(parts, bvh, strict=True):
        first, last = export.take_frame_range(action)
        performer_list.append({
            "name": obj.name, "label": label, "track_ids": cast.track_ids[obj.name], "action": action.name,
            "packets": len(by_armature[obj.name]), "frame_start": first, "frame_end": last,
            "frames": last - first + 1, "bvh": str(Path(path).resolve()),
        })
    summary.update({
        "take": settings.last_take, "performers": performer_list,
        # The first performer's, as before several performers were recorded (older readers use these).
        "action": parts[0][2].name, "samples": performer_list[0]["packets"],
        "frame_start": start, "frame_end": end, "take_t0": takes[0].origin, "fps": scene.render.fps,
        "performer_switches": cast.switches,
        "applied_latency_ms_p50": round(percentile(latencies, 50), 2),
        "applied_latency_ms_p95": round(percentile(latencies, 95), 2),
        "applied_latency_ms_last": round(latencies[-1], 2) if latencies else None,
        "sent_to_applied_ms_p50": round(percentile(handoff, 50), 2) if handoff else None,
        "sent_to_applied_ms_p95": round(percentile(handoff, 95), 2) if handoff else None,
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
