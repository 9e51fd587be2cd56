"""Median time of one add-on apply tick (`core.tick.apply_tick`) for one COCO-17 person.

Runs real bpy headless: each packet is validated by the real validator and handed to the real
receiver in-process (the receiver thread's work, so not timed), then one tick is timed: take the
newest packet, select the person, drive the armature, update the status properties. Set-ups: the
capture rig in IK mode (moves its IK empties), the capture rig in Direct mode (bone rotations), and
a plain armature with the same bones (no capture-rig empties or constraints) driven through its
detected bone map preset in IK mode (LOCATION controls) and Direct mode. "+eval" adds the scene
evaluation (constraints, IK solve) that the viewport pays on redraw and recording pays per sample.
Target: at most 1 ms per tick. Prints medians and their ratio to 1 ms.

Several performers (--people 1,2,4): one capture rig per person, each bound to its track id (the add-on's
bindings), packets with that many people sent through a real UDP socket to the running receiver; each tick
(taken once the datagram arrived) drives every bound rig, and with --record samples every rig into its take.
The people counts take turns in rounds in one scene (bindings enabled or not), so they share the machine's
state; wall and CPU time (this thread) per tick and per person. Target: at most 1 ms per person.

    .venv/bin/python scripts/bench_addon.py [--ticks 2000] [--record] [--people 1,2,4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon.core import performers, recorder, rig, state, tick  # noqa: E402
from tests.addon.packets import encode, make_packet  # noqa: E402

TARGET_MS = 1.0


def _time_ticks(scene, ticks: int, record: bool, evaluate: bool) -> list[float]:
    rx = state.receiver(scene)
    datagrams = [encode(make_packet(i, 1000.0 + i / 30.0, phase=(i % 60) * 0.01)) for i in range(ticks)]
    if record:
        target = scene.vitpose_mocap.target
        state.set_recording(scene, recorder.TakeRecorder(target, 24.0, 1, "BenchTake"))
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
    state.set_recording(scene, None)
    return times


SETUPS = ("capture rig, IK", "capture rig, direct", "plain armature, IK", "plain armature, direct")


def _setup(name: str):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    settings = scene.vitpose_mocap
    state.start_receiver(scene, settings.host, 0)  # port 0: any free port; data is fed in-process
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


def _performers_scene(most: int):
    """`most` capture rigs bound to track ids 0..most-1 and a receiver on a real UDP port."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    settings = scene.vitpose_mocap
    rx = state.start_receiver(scene, "127.0.0.1", 0)
    performers.create_rigs_for_everyone(bpy.context, make_packet(0, 999.0, people=most), with_mesh=False)
    bpy.context.view_layer.update()
    assert len(settings.bindings) == most
    return scene, rx


def _send_and_tick(scene, rx, sock, packet: dict) -> tuple[float, float]:
    """Send one datagram over UDP, wait until the receiver has it, time the tick: (wall, CPU of this thread)."""
    before = rx.received
    sock.sendto(encode(packet), (rx.host, rx.port))
    deadline = time.monotonic() + 2.0
    while rx.received == before:
        if time.monotonic() > deadline:
            raise SystemExit(f"packet {packet['seq']} did not arrive over UDP")
        time.sleep(0)
    w0, c0 = time.perf_counter(), time.thread_time()
    tick.apply_tick(scene)
    return time.perf_counter() - w0, time.thread_time() - c0


def bench_performers(counts: list[int], ticks: int, rounds: int, record: bool) -> None:
    """Median tick per people count, the counts taking turns in `rounds` rounds of `ticks` ticks each."""
    scene, rx = _performers_scene(max(counts))
    settings = scene.vitpose_mocap
    times: dict[int, list[tuple[float, float]]] = {n: [] for n in counts}
    seq = 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _round in range(rounds):
            for n in counts:
                for k, binding in enumerate(settings.bindings):
                    binding.enabled = k < n
                if record:
                    bound = performers.bound_armatures(settings)
                    state.set_recording(scene, recorder.performer_takes(scene, bound, "BenchTake"))
                    settings.is_recording = True
                applied = settings.applied
                for i in range(ticks):
                    packet = make_packet(seq, 1000.0 + seq / 30.0, phase=(seq % 60) * 0.01, people=n)
                    seq += 1
                    sample = _send_and_tick(scene, rx, sock, packet)
                    if i >= 20:  # the first ticks after a switch rebuild caches
                        times[n].append(sample)
                if settings.applied - applied != ticks:
                    raise SystemExit(f"{n} people: only {settings.applied - applied} of {ticks} ticks applied: "
                                     f"{settings.last_error}")
                settings.is_recording = False
                state.set_recording(scene, None)
    state.stop_all()
    print(f"\nSeveral performers: capture rigs, IK, packets over UDP{', recording' if record else ''}; "
          f"{rounds} rounds x {ticks} ticks per count, interleaved")
    for n in counts:
        wall = statistics.median(t for t, _c in times[n]) * 1000.0
        cpu = statistics.median(c for _t, c in times[n]) * 1000.0
        print(f"{n} people   tick median {wall:7.3f} ms (CPU {cpu:7.3f} ms)   per person {wall / n:7.3f} ms "
              f"(CPU {cpu / n:7.3f} ms)   ratio to 1 ms/person {wall / n / TARGET_MS:5.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Median apply-tick time of the Blender add-on")
    parser.add_argument("--ticks", type=int, default=2000, help="ticks per set-up (default 2000)")
    parser.add_argument("--record", action="store_true", help="also time ticks while recording a take")
    parser.add_argument("--people", default="1,2,4", help="people counts for the several-performers part ('' skips)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds the people counts take turns in")
    parser.add_argument("--people-ticks", type=int, default=200, help="ticks per people count per round")
    parser.add_argument("--skip-single", action="store_true", help="only the several-performers part")
    args = parser.parse_args(argv)
    blender_addon.register()
    load = os.getloadavg()
    print(f"Blender {bpy.app.version_string}, {args.ticks} ticks per set-up, target <= {TARGET_MS} ms; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (numbers under load are not final)")
    variants = [(False, False), (False, True)] + ([(True, True)] if args.record else [])
    for name in () if args.skip_single else SETUPS:
        for rec, evaluate in variants:
            scene = _setup(name)
            times = _time_ticks(scene, args.ticks, rec, evaluate)[50:]  # the first ticks build caches
            median_ms = statistics.median(times) * 1000.0
            p90_ms = sorted(times)[int(len(times) * 0.9)] * 1000.0
            label = name + (" +eval" if evaluate else "") + (" +record" if rec else "")
            print(f"{label:40s} median {median_ms:7.3f} ms  p90 {p90_ms:7.3f} ms  "
                  f"ratio to 1 ms {median_ms / TARGET_MS:5.2f}")
            state.stop_all()
    counts = [int(n) for n in args.people.split(",") if n.strip()]
    if counts:
        bench_performers(counts, args.people_ticks, args.rounds, record=False)
        if args.record:
            bench_performers(counts, args.people_ticks, args.rounds, record=True)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    blender_addon.unregister()
    return 0


if __name__ == "__main__":
    sys.exit(main())
