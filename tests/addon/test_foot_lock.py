"""Protocol v3 foot contacts in the add-on: every packet version drives the rig, and a planted foot stays pinned
through the IK rig (unless pinning is off), then follows the measured ankle again when lifted."""

from __future__ import annotations

import time

import bpy
import pytest

from .helpers import capture_rig
from .packets import make_packet

pytestmark = pytest.mark.bpy42

UNIT_ROTATIONS = [[1.0, 0.0, 0.0, 0.0]] * 12


def _packet(seq: int, t: float, phase: float, version: int, contacts: tuple[float, float] | None = None) -> dict:
    p = make_packet(seq, t, phase=phase, version=version)
    if version >= 2:
        p["people"][0]["rotations"] = UNIT_ROTATIONS
    if contacts is not None:
        p["people"][0]["contacts"] = list(contacts)
    return p


def _left_ankle(rig) -> tuple[float, float, float]:
    bpy.context.view_layer.update()
    return tuple(rig.matrix_world @ rig.pose.bones["shin.L"].tail)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_every_protocol_version_drives_the_rig(scene, send, version):
    rig = capture_rig(scene)
    t = time.time()
    send(_packet(0, t, 0.0, version, (0.1, 0.1) if version == 3 else None))
    start = _left_ankle(rig)
    send(_packet(1, t + 0.033, 0.3, version, (0.1, 0.1) if version == 3 else None))
    assert scene.vitpose_mocap.applied == 2 and scene.vitpose_mocap.invalid == 0
    assert _left_ankle(rig)[0] - start[0] == pytest.approx(0.3, abs=0.03)


@pytest.mark.parametrize("pin", [True, False])
def test_a_planted_foot_stays_where_it_was_planted(scene, send, pin):
    rig = capture_rig(scene)
    scene.vitpose_mocap.foot_lock = pin
    t = time.time()
    send(_packet(0, t, 0.0, 3, (0.95, 0.1)))
    planted = _left_ankle(rig)
    for seq in range(1, 4):  # the measured body (and its left ankle) slides 3 cm per frame: foot skating
        send(_packet(seq, t + seq / 30, 0.03 * seq, 3, (0.95, 0.1)))
    slid = _left_ankle(rig)[0] - planted[0]
    if pin:
        assert abs(slid) < 0.01
    else:
        assert slid == pytest.approx(0.09, abs=0.02)
    # lifted: the ankle glides back to the measured one within the release time (0.15 s)
    send(_packet(4, t + 4 / 30, 0.16, 3, (0.1, 0.1)))
    send(_packet(5, t + 0.5, 0.16, 3, (0.1, 0.1)))
    assert _left_ankle(rig)[0] - planted[0] == pytest.approx(0.16, abs=0.02)


def test_a_pin_the_body_leaves_behind_is_dragged_on_a_leash_not_at_full_stretch(scene, send):
    rig = capture_rig(scene)
    t = time.time()
    send(_packet(0, t, 0.0, 3, (0.95, 0.1)))
    planted = _left_ankle(rig)
    for seq in range(1, 11):  # called planted while the body travels 40 cm: the contact is wrong
        send(_packet(seq, t + seq / 30, 0.04 * seq, 3, (0.95, 0.1)))
    # the pin follows 10 cm (the leash) behind the measured ankle instead of holding the leg back 40 cm
    assert _left_ankle(rig)[0] - planted[0] == pytest.approx(0.40 - 0.10, abs=0.02)


def test_pin_at_sets_the_contact_probability_that_pins(scene, send):
    rig = capture_rig(scene)
    scene.vitpose_mocap.pin_at = 0.8  # a contact of 0.7 no longer pins
    t = time.time()
    send(_packet(0, t, 0.0, 3, (0.7, 0.1)))
    planted = _left_ankle(rig)
    send(_packet(1, t + 1 / 30, 0.03, 3, (0.7, 0.1)))
    assert _left_ankle(rig)[0] - planted[0] == pytest.approx(0.03, abs=0.01)
    scene.vitpose_mocap.pin_at = 0.5  # now it does (and is released below 0.3, not 0.4)
    send(_packet(2, t + 2 / 30, 0.06, 3, (0.7, 0.1)))
    pinned = _left_ankle(rig)
    send(_packet(3, t + 3 / 30, 0.09, 3, (0.35, 0.1)))
    send(_packet(4, t + 0.5, 0.12, 3, (0.35, 0.1)))  # released at 0.4, it would have glided back by now
    assert abs(_left_ankle(rig)[0] - pinned[0]) < 0.01
    scene.vitpose_mocap.pin_at = 0.6
    send(_packet(5, t + 0.6, 0.12, 3, (0.35, 0.1)))
    send(_packet(6, t + 1.0, 0.12, 3, (0.35, 0.1)))
    assert _left_ankle(rig)[0] - pinned[0] == pytest.approx(0.06, abs=0.01)


@pytest.mark.parametrize("settle", [0.0, 1.0])
def test_settle_lets_a_foot_decelerate_into_its_pin_and_lets_go_of_its_lag(scene, send, settle):
    """A foot sliding 3 cm a frame while its contact probability rises towards the pin (0.6): off, it slides at full
    speed up to the pin; at Settle 1 it is held back more the nearer the pin, so it slows down into it. Lifted, the
    lag it kept fades out within the release time."""
    rig = capture_rig(scene)
    scene.vitpose_mocap.settle_feet = settle
    t = time.time()
    send(_packet(0, t, 0.0, 3, (0.3, 0.1)))
    start = _left_ankle(rig)
    xs = []
    for seq, p in enumerate((0.45, 0.5, 0.55, 0.58), start=1):  # between release (0.4) and pin (0.6)
        send(_packet(seq, t + seq / 30, 0.03 * seq, 3, (p, 0.1)))
        xs.append(_left_ankle(rig)[0] - start[0])
    steps = [b - a for a, b in zip([0.0, *xs[:-1]], xs, strict=True)]
    if settle == 0.0:
        assert steps == pytest.approx([0.03] * 4, abs=0.005)
    else:  # each frame keeps (p - 0.4) / 0.2 of the lag: 25, 50, 75, 90 %
        assert steps[-1] < 0.5 * steps[0] and xs[-1] < 0.12 - 0.04
    send(_packet(5, t + 5 / 30, 0.15, 3, (0.1, 0.1)))  # lifted
    send(_packet(6, t + 0.6, 0.15, 3, (0.1, 0.1)))
    assert _left_ankle(rig)[0] - start[0] == pytest.approx(0.15, abs=0.01)


def _record_drive(monkeypatch) -> dict[str, list]:
    """Session import's rig drive, recording the joints each armature is handed (by armature name)."""
    from blender_addon.core import session_import

    driven: dict[str, list] = {}
    apply_person = session_import.drive.apply_person

    def record(scene, armature, person, packet):
        driven.setdefault(armature.name, []).append(person["joints_3d"])
        return apply_person(scene, armature, person, packet)

    monkeypatch.setattr(session_import.drive, "apply_person", record)
    return driven


@pytest.mark.parametrize("pin", [True, False])
def test_an_imported_session_pins_planted_feet_as_live_data_does(scene, tmp_path, monkeypatch, pin):
    """Session import (the Import Session operator, and so `pose-server convert`) hands the rig the pinned ankle, as
    the live tick does, when the panel's "Pin planted feet" is on."""
    import json

    from blender_addon.core import session_import

    rig = capture_rig(scene)
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.vitpose_mocap.foot_lock = pin
    packets = [_packet(seq, 5000.0 + seq / 30, 0.02 * seq, 3, (0.95, 0.1)) for seq in range(5)]  # 8 cm: on the leash
    path = tmp_path / "session.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in packets) + "\n")
    driven = _record_drive(monkeypatch)
    session_import.import_session(scene, rig, str(path), start_frame=1)
    driven = driven[rig.name]
    left, right = ([frame[k][0] - driven[0][k][0] for frame in driven] for k in (15, 16))
    assert right[-1] == pytest.approx(0.08, abs=1e-3)  # contact 0.1: never pinned
    assert left[-1] == (pytest.approx(0.0, abs=1e-6) if pin else pytest.approx(0.08, abs=1e-3))


def test_an_imported_session_pins_each_bound_performers_feet_on_their_own(scene, tmp_path, monkeypatch):
    """Import with bindings: one pinning state per armature, so one performer's planted foot never holds another's."""
    import json

    from blender_addon.core import performers

    scene.render.fps, scene.render.fps_base = 30, 1.0

    def packet(seq: int) -> dict:
        p = make_packet(seq, 9000.0 + seq / 30, phase=0.02 * seq, people=2, version=3)
        for person, contacts in zip(p["people"], ((0.95, 0.1), (0.1, 0.1)), strict=True):
            person["rotations"], person["contacts"] = UNIT_ROTATIONS, list(contacts)
        return p

    path = tmp_path / "session.jsonl"
    path.write_text("\n".join(json.dumps(packet(seq)) for seq in range(5)) + "\n")
    created = performers.create_rigs_for_everyone(bpy.context, packet(0), with_mesh=False)
    driven = _record_drive(monkeypatch)
    assert bpy.ops.vitpose_mocap.import_session(filepath=str(path)) == {"FINISHED"}
    slid = {name: frames[-1][15][0] - frames[0][15][0] for name, frames in driven.items()}
    assert slid == {created[0].name: pytest.approx(0.0, abs=1e-6), created[1].name: pytest.approx(0.08, abs=1e-3)}


def test_a_packet_stamped_before_the_release_keeps_the_ankle_near_its_pin():
    """A sender whose clock stepped back: the release's glide weight went negative and threw the ankle out along
    the line from the pin, 4 m for a 10 s step."""
    from blender_addon.core.foot_lock import FootLock

    def person(x: float, contact: float) -> dict:
        joints = [[0.0, 0.0, 1.0] for _ in range(17)]
        joints[15] = [x, 0.0, 0.08]  # the left ankle
        return {"id": 0, "joints_3d": joints, "contacts": [contact, 0.0]}

    lock = FootLock()
    lock.apply(person(0.0, 0.9), 1000.0)  # planted at x = 0
    lock.apply(person(0.05, 0.1), 1000.05)  # lifted: the glide back to the measured ankle starts
    out = lock.apply(person(0.06, 0.1), 990.0)
    assert 0.0 <= out["joints_3d"][15][0] <= 0.06
