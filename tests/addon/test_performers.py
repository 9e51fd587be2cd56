"""Several performers: one armature per track id, bound in the panel's list; a performer who leaves and comes back
keeps its armature, an id nobody asked for gets none; feet are pinned per armature."""

from __future__ import annotations

import time

import bpy
import pytest

from blender_addon.core import performers

from .helpers import bone_head, capture_rig
from .packets import make_packet

pytestmark = pytest.mark.bpy42


def _packet(seq: int, ids: tuple[int, ...] = (0, 1), phase: float | None = None, **kwargs) -> dict:
    """A packet with people of `ids`: person k of make_packet (standing k metres along +X) gets id ids[k]."""
    packet = make_packet(seq, time.time(), phase=phase, people=len(ids), **kwargs)
    for person, track_id in zip(packet["people"], ids, strict=True):
        person["id"] = track_id
    return packet


def _armatures() -> list[str]:
    return sorted(o.name for o in bpy.data.objects if o.type == "ARMATURE")


def test_create_rigs_for_everyone_binds_every_tracked_id_and_drives_each(scene, send):
    settings = scene.vitpose_mocap
    send(_packet(0, ids=(3, 7), phase=0.0))
    assert settings.tracked_ids == "3, 7" and settings.applied == 0  # nothing bound, no target: nothing driven
    assert bpy.ops.vitpose_mocap.create_rigs_for_everyone() == {"FINISHED"}
    assert _armatures() == ["Performer 3", "Performer 7"]
    assert [(b.track_id, b.armature.name, b.enabled) for b in settings.bindings] == [
        (3, "Performer 3", True), (7, "Performer 7", True)]
    send(_packet(1, ids=(3, 7), phase=0.2))
    # Person k of the packet stands k metres along +X: each rig follows its own id.
    assert bone_head(bpy.data.objects["Performer 3"], "hips").x == pytest.approx(0.2, abs=0.02)
    assert bone_head(bpy.data.objects["Performer 7"], "hips").x == pytest.approx(1.2, abs=0.02)
    assert settings.applied == 1  # one packet applied, to both armatures
    # Asked again with nobody new: no rig is added.
    assert bpy.ops.vitpose_mocap.create_rigs_for_everyone() == {"CANCELLED"}
    assert len(_armatures()) == 2


def test_a_performer_who_leaves_and_returns_keeps_its_armature_and_new_ids_get_none(scene, send):
    settings = scene.vitpose_mocap
    send(_packet(0, ids=(0, 1), phase=0.0))
    bpy.ops.vitpose_mocap.create_rigs_for_everyone()
    p1 = bpy.data.objects["Performer 1"]
    send(_packet(1, ids=(0, 1), phase=0.1))
    assert bone_head(p1, "hips").x == pytest.approx(1.1, abs=0.02)
    # Performer 1 leaves; a flickering track shows up under ids 5, 6, 7 in turn, standing where 1 stood.
    for seq, flicker in enumerate((5, 6, 7), start=2):
        send(_packet(seq, ids=(0, flicker), phase=0.1 + 0.1 * seq))
        assert settings.tracked_ids == f"0, {flicker}"
    assert bone_head(p1, "hips").x == pytest.approx(1.1, abs=0.02)  # held its last pose
    assert bone_head(bpy.data.objects["Performer 0"], "hips").x == pytest.approx(0.5, abs=0.02)
    assert _armatures() == ["Performer 0", "Performer 1"] and len(settings.bindings) == 2
    # Performer 1 comes back under its id: the same armature moves again.
    send(_packet(5, ids=(0, 1), phase=0.6))
    assert bone_head(p1, "hips").x == pytest.approx(1.6, abs=0.02)
    # A new id gets a rig only when asked: then exactly one, beside the others (spacing), bound to that id.
    send(_packet(6, ids=(0, 1, 9), phase=0.6))
    settings.rig_spacing = 2.0
    assert bpy.ops.vitpose_mocap.create_rigs_for_everyone() == {"FINISHED"}
    assert _armatures() == ["Performer 0", "Performer 1", "Performer 9"]
    assert bpy.data.objects["Performer 9"].location.x == pytest.approx(4.0)  # the third binding: 2 x 2 m


def test_hand_over_passes_a_lost_performers_armature_to_a_new_id_after_a_while(scene, send):
    """The tracker lost performer 1 and found them again as id 5: with Hand over lost performers, after
    `handover_after` packets without id 1, its armature follows id 5; nothing is created, and a performer only
    missing for a moment keeps its id."""
    settings = scene.vitpose_mocap
    settings.handover, settings.handover_after = True, 3
    send(_packet(0, ids=(0, 1), phase=0.0))
    bpy.ops.vitpose_mocap.create_rigs_for_everyone()
    p1 = bpy.data.objects["Performer 1"]
    send(_packet(1, ids=(0, 1), phase=0.0))
    for seq in (2, 3, 4):  # missing 3 packets: not yet handed over
        send(_packet(seq, ids=(0, 5), phase=0.1 * seq))
    assert [b.track_id for b in settings.bindings] == [0, 1]
    assert bone_head(p1, "hips").x == pytest.approx(1.0, abs=0.02)
    send(_packet(5, ids=(0, 5), phase=0.4))  # the 4th: handed over, and driven from this packet on
    assert [b.track_id for b in settings.bindings] == [0, 5]
    assert bone_head(p1, "hips").x == pytest.approx(1.4, abs=0.02)
    assert _armatures() == ["Performer 0", "Performer 1"]
    # Off (the default): a lost id keeps its armature waiting, however long.
    settings.handover = False
    for seq in range(6, 11):
        send(_packet(seq, ids=(0, 8), phase=0.5))
    assert [b.track_id for b in settings.bindings] == [0, 5]


def test_bind_a_chosen_id_to_a_chosen_armature_and_fall_back_to_the_target(scene, send):
    """The list binds any id to any armature; a disabled binding drives nothing, and with no enabled binding the
    single Armature/Person pair drives again (the default mode)."""
    settings = scene.vitpose_mocap
    target = capture_rig(scene)  # the single-armature mode's target (largest person: id 0 at x = 0)
    chosen = performers.create_rig_for(bpy.context, {"id": 1, "joints_3d": None}, with_mesh=False)[0]
    assert bpy.ops.vitpose_mocap.binding_edit() == {"FINISHED"}
    assert bpy.ops.vitpose_mocap.binding_edit() == {"FINISHED"}
    assert [b.track_id for b in settings.bindings] == [0, 1]  # no packet yet: the next free ids
    bpy.ops.vitpose_mocap.binding_edit(remove=True)
    binding = settings.bindings[0]
    binding.track_id, binding.armature = 1, chosen
    send(_packet(0, ids=(0, 1), phase=0.3))
    assert bone_head(chosen, "hips").x == pytest.approx(1.3, abs=0.02)
    assert bone_head(target, "hips").x == pytest.approx(0.0, abs=0.02)  # bound mode: the target is not driven
    binding.enabled = False
    send(_packet(1, ids=(0, 1), phase=0.5))
    assert bone_head(target, "hips").x == pytest.approx(0.5, abs=0.02)
    assert bone_head(chosen, "hips").x == pytest.approx(1.3, abs=0.02)


def test_a_calibrated_character_and_a_capture_rig_perform_side_by_side(scene, send):
    """Performer 0 drives a Mixamo-style character (the target: its bone map, calibration and location scale),
    performer 1 a capture rig (its own preset, at its own size): neither is driven through the other's settings."""
    from .test_retarget import MIXAMO_SCALE, mixamo_like, use_preset

    settings = scene.vitpose_mocap
    character = mixamo_like()
    assert use_preset(scene, character) == "mixamo"
    assert settings.rig.location_scale == pytest.approx(MIXAMO_SCALE, rel=1e-3)
    capture = performers.create_rig_for(bpy.context, {"id": 1, "joints_3d": None}, with_mesh=False)[0]
    performers.bind(settings, 0, character)
    performers.bind(settings, 1, capture)
    hips = character.pose.bones["mixamorig1:Hips"]
    send(_packet(0, ids=(0, 1), phase=0.0))
    start = bone_head(character, hips.name).x
    send(_packet(1, ids=(0, 1), phase=0.3))
    assert settings.last_error == ""
    # The character travels 0.3 m times its location scale; the capture rig stands where performer 1 is.
    assert bone_head(character, hips.name).x - start == pytest.approx(0.3 * MIXAMO_SCALE, abs=0.02)
    assert bone_head(capture, "hips").x == pytest.approx(1.3, abs=0.02)


def test_planted_feet_are_pinned_per_performer(scene, send):
    """Two performers with planted left feet, both sliding 3 cm per frame: each armature keeps its own anchor
    (one lock per scene would hand one performer's anchor to the other, or reset on every id change)."""
    send(_packet(0, ids=(0, 1), phase=0.0, version=3))
    bpy.ops.vitpose_mocap.create_rigs_for_everyone()
    rigs = [bpy.data.objects["Performer 0"], bpy.data.objects["Performer 1"]]

    def planted(seq: int, phase: float) -> dict:
        packet = _packet(seq, ids=(0, 1), phase=phase, version=3)
        for person in packet["people"]:
            person["contacts"] = [0.95, 0.1]
        return packet

    send(planted(1, 0.0))
    bpy.context.view_layer.update()
    anchors = [tuple(r.matrix_world @ r.pose.bones["shin.L"].tail) for r in rigs]  # the left ankles
    for seq in range(2, 5):
        send(planted(seq, 0.03 * (seq - 1)))  # 9 cm: within the pin's 10 cm leash
    bpy.context.view_layer.update()
    for rig, anchor, x in zip(rigs, anchors, (0.1, 1.1), strict=True):
        ankle = rig.matrix_world @ rig.pose.bones["shin.L"].tail
        assert abs(ankle.x - anchor[0]) < 0.01, rig.name
        assert ankle.x == pytest.approx(x, abs=0.03), rig.name  # its own performer's foot, not the other's


def test_two_ids_bound_to_one_armature_the_first_drives_it_and_the_panel_says_so(scene, send):
    """Two bindings naming one armature drove it from both people in turn, the last one each packet: the rig
    jumped between performers and a take recorded both into one Action."""
    settings = scene.vitpose_mocap
    rig_a = performers.create_rig_for(bpy.context, {"id": 0, "joints_3d": None}, with_mesh=False)[0]
    rig_b = performers.create_rig_for(bpy.context, {"id": 2, "joints_3d": None}, with_mesh=False)[0]
    for track_id, armature in ((0, rig_a), (1, rig_a), (2, rig_b)):
        binding = settings.bindings.add()
        binding.track_id, binding.armature, binding.enabled = track_id, armature, True
    assert performers.shadowed_bindings(settings) == {1: 0}
    assert performers.bound_armatures(settings) == [(0, rig_a), (2, rig_b)]
    send(_packet(0, ids=(0, 1, 2), phase=0.3))  # person k stands k metres along +X
    assert bone_head(rig_a, "hips").x == pytest.approx(0.3, abs=0.02)  # id 0's, not id 1's (1.3)
    assert bone_head(rig_b, "hips").x == pytest.approx(2.3, abs=0.02)
    settings.bindings[0].enabled = False  # the first stands aside: the second drives it
    assert performers.shadowed_bindings(settings) == {}
    send(_packet(1, ids=(0, 1, 2), phase=0.4))
    assert bone_head(rig_a, "hips").x == pytest.approx(1.4, abs=0.02)
