"""The Blender half of `pose-server convert`: headless Blender (the `bpy` module) running the real add-on.

Reads one job (JSON on argv: the session file, the outputs, the performers' track ids, the video's fps), builds
one capture rig per performer sized from its first 3D joints, imports the session into a take per performer with
the add-on's own session import (the same validator, rig drive and sampling as live data), and writes:

- `.fbx`: the add-on's take exporter, every performer in one file: an armature each (`Performer_3`) with its own
  animation, in one animation stack named after the file (`take.fbx` -> Blender imports `Performer_3|take`);
- `.bvh`: the add-on's exporter, one file per performer (a BVH holds one skeleton): `take.bvh`, or
  `take_person3.bvh`, ... when there are several;
- `.glb`: Blender's own glTF exporter, every performer in one file;
- `.blend`: every performer in one file, the takes playing (the live rig's constraints muted).

Prints one `RESULT {json}` line: {"files": {".fbx": [...], ...}, "takes": {...}} or {"error": "..."}.

    python scripts/convert_blender.py '{"session": "take.jsonl", "outputs": ["take.fbx"], "people": [1], "fps": 30}'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402, I001 (addon_utils exists once bpy is imported)
import addon_utils  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon.core import export, rig, session_import  # noqa: E402


def set_fps(scene: bpy.types.Scene, fps: float) -> None:
    """The video's frame rate, fractional ones (29.97) as Blender spells them: fps / fps_base."""
    whole = max(1, round(fps))
    scene.render.fps = whole
    scene.render.fps_base = whole / fps


def first_joints(packets: list[dict], person_id: int) -> tuple[list, float] | tuple[None, None]:
    for p in packets:
        for person in p["people"]:
            if person["id"] == person_id and person.get("joints_3d") is not None:
                return person["joints_3d"], p["timestamp"]
    return None, None


def export_glb(scene: bpy.types.Scene, path: str, start: int, end: int) -> str:
    addon_utils.enable("io_scene_gltf2", default_set=False)
    scene.frame_start, scene.frame_end = start, end
    # every armature's take as one glTF animation named after the file: with one animation per action (the mode
    # before), viewers play one at a time and Blender's importer gave only the first performer its take
    result = bpy.ops.export_scene.gltf(filepath=path, export_format="GLB", use_selection=False,
                                       export_animations=True, export_animation_mode="ACTIVE_ACTIONS",
                                       export_nla_strips_merged_animation_name=Path(path).stem,
                                       export_force_sampling=True, export_frame_range=True)
    if "FINISHED" not in result:
        raise RuntimeError(f"glTF export did not finish ({result})")
    return path


def per_person(path: Path, pid: int, several: bool) -> str:
    """A BVH holds one skeleton: with several performers each gets its own file, `take_person3.bvh`."""
    return str(path.with_name(f"{path.stem}_person{pid}{path.suffix}") if several else path)


def run(job: dict) -> dict:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    scene = bpy.context.scene
    set_fps(scene, float(job["fps"]))
    packets, skipped = session_import.read_session(job["session"])
    if not packets:
        return {"error": f"{job['session']} holds no valid packet ({skipped} lines rejected)"}
    t_first = packets[0]["timestamp"]
    takes: dict[int, tuple[bpy.types.Object, bpy.types.Action]] = {}
    for pid in job["people"]:
        joints, t = first_joints(packets, pid)
        if joints is None:
            continue
        try:
            arm = rig.create_capture_rig(bpy.context, joints=joints, name=f"Performer_{pid}")
        except ValueError as exc:  # a first lifted frame that is no standing person (e.g. random weights)
            print(f"convert_blender: performer {pid}: {exc}; using the default proportions", flush=True)
            arm = rig.create_capture_rig(bpy.context, name=f"Performer_{pid}")
        start = 1 + round((t - t_first) * float(job["fps"]))  # performers who enter later start later
        action, _ = session_import.import_session(scene, arm, job["session"], person_mode="ID", person_id=pid,
                                                  start_frame=start)
        action.name = f"Take_person{pid}"
        takes[pid] = (arm, action)
    if not takes:
        return {"error": "no performer of the session carries 3D joints"}
    ranges = [export.take_frame_range(a) for _, a in takes.values()]
    start, end = min(r[0] for r in ranges), max(r[1] for r in ranges)
    files: dict[str, list[str]] = {}
    several = len(takes) > 1
    for out in (Path(o) for o in job["outputs"]):
        ext = out.suffix.lower()
        out.parent.mkdir(parents=True, exist_ok=True)
        if ext == ".fbx":  # one file, one armature per performer, as the add-on exports a take of several
            written = [export.export_fbx_take(scene, list(takes.values()), str(out), out.stem)]
        elif ext == ".bvh":
            written = [export.export_bvh(scene, arm, act, per_person(out, pid, several))
                       for pid, (arm, act) in takes.items()]
        elif ext == ".glb":  # each armature playing its take, its capture-rig constraints muted (as the FBX's)
            with export.playing_takes(scene, list(takes.values())):
                written = [export_glb(scene, str(out), start, end)]
        elif ext == ".blend":  # a copy that plays the takes
            written = [export.save_blend_copy(str(out), scene, list(takes.values()))]
        else:
            return {"error": f"cannot write {out.name} from Blender"}
        files.setdefault(ext, []).extend(written)
    return {"files": files, "frame_start": start, "frame_end": end,
            "takes": {str(pid): {"action": act.name, "armature": a.name, "frames": list(export.take_frame_range(act))}
                      for pid, (a, act) in takes.items()}}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):  # run by `pose-server convert`, not by hand
        print(__doc__, file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    try:
        result = run(json.loads(argv[0]))
    except Exception as exc:  # reported to the server side, which shows it as one line
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print("\nRESULT " + json.dumps(result), flush=True)  # on a line of its own, whatever Blender printed last
    return 1 if result.get("error") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
