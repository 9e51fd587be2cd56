"""Median time of one add-on apply tick (`core.tick.apply_tick`) for one COCO-17 person.

Runs real bpy headless: each packet is validated by the real validator and handed to the real
receiver in-process (the receiver thread's work, so not timed), then one tick is timed: take the
newest packet, select the person, drive the armature, update the status properties. Set-ups: the
capture rig in IK mode (moves its IK empties), the capture rig in Direct mode (bone rotations), and
a plain armature with the same bones (no capture-rig empties or constraints) driven through its
detected bone map preset in IK mode (LOCATION controls) and Direct mode. "+eval" adds the scene
evaluation (constraints, IK solve) that the viewport pays on redraw and recording pays per sample.
Target: at most 1 ms per tick. Prints medians and their ratio to 1 ms.

    .venv/bin/python scripts/bench_addon.py [--ticks 2000] [--record]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon.core import recorder, rig, state, tick  # noqa: E402
from tests.addon.packets import encode, make_packet  # noqa: E402

TARGET_MS = 1.0


def _time_ticks(scene, ticks: int, record: bool, evaluate: bool) -> list[float]:
    rx = state.receiver(scene.name)
    datagrams = [encode(make_packet(i, 1000.0 + i / 30.0, phase=(i % 60) * 0.01)) for i in range(ticks)]
    if record:
        target = scene.vitpose_mocap.target
        state.set_recording(scene.name, recorder.TakeRecorder(target, 24.0, 1, "BenchTake"))
        scene.vitpose_mocap.is_recording = True
    times = []
    for data in datagrams:
        rx.offer(data, ("127.0.0.1", 1))
        t0 = time.perf_counter()
        tick.apply_tick(scene)
        if evaluate:
            bpy.context.view_layer.update()
        times.append(time.perf_counter() - t0)
    if scene.vitpose_mocap.applied != ticks:
        raise SystemExit(f"only {scene.vitpose_mocap.applied} of {ticks} ticks drove the armature: "
                         f"{scene.vitpose_mocap.last_error}")
    scene.vitpose_mocap.is_recording = False
    state.set_recording(scene.name, None)
    return times


SETUPS = ("capture rig, IK", "capture rig, direct", "plain armature, IK", "plain armature, direct")


def _setup(name: str):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    settings = scene.vitpose_mocap
    state.start_receiver(scene.name, settings.host, 0)  # port 0: any free port; data is fed in-process
    obj = rig.create_capture_rig(bpy.context, with_mesh=False)
    if name.startswith("plain"):
        # Same bones, none of the capture rig's empties, constraints or marker: a generic humanoid.
        plain = bpy.data.objects.new("Plain", obj.data.copy())
        scene.collection.objects.link(plain)
        for child in list(obj.children):
            bpy.data.objects.remove(child)
        bpy.data.objects.remove(obj)
        obj = plain
        bpy.context.view_layer.update()  # a new armature object has no pose until evaluated once
    settings.target = obj
    settings.rig.drive_mode = "IK" if name.endswith("IK") else "DIRECT"
    return scene


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Median apply-tick time of the Blender add-on")
    parser.add_argument("--ticks", type=int, default=2000, help="ticks per set-up (default 2000)")
    parser.add_argument("--record", action="store_true", help="also time ticks while recording a take")
    args = parser.parse_args(argv)
    blender_addon.register()
    print(f"Blender {bpy.app.version_string}, {args.ticks} ticks per set-up, target <= {TARGET_MS} ms")
    variants = [(False, False), (False, True)] + ([(True, True)] if args.record else [])
    for name in SETUPS:
        for rec, evaluate in variants:
            scene = _setup(name)
            times = _time_ticks(scene, args.ticks, rec, evaluate)[50:]  # the first ticks build caches
            median_ms = statistics.median(times) * 1000.0
            p90_ms = sorted(times)[int(len(times) * 0.9)] * 1000.0
            label = name + (" +eval" if evaluate else "") + (" +record" if rec else "")
            print(f"{label:40s} median {median_ms:7.3f} ms  p90 {p90_ms:7.3f} ms  "
                  f"ratio to 1 ms {median_ms / TARGET_MS:5.2f}")
            state.stop_all()
    blender_addon.unregister()
    return 0


if __name__ == "__main__":
    sys.exit(main())
