"""Scene settings and live status of the add-on: `scene.vitpose_mocap`."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .core.receiver import DEFAULT_HOST, DEFAULT_PORT
from .rig_properties import RigSettings


def _is_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE"


class PerformerBinding(bpy.types.PropertyGroup):
    """One tracked person (the server's track id) and the armature it drives and records."""

    track_id: IntProperty(name="Track ID", min=0, description="The pose server's track id of the performer")
    armature: PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature,
                              description="Armature this performer drives and records into takes")
    enabled: BoolProperty(name="Enabled", default=True, description="Drive and record this binding")
    missing: IntProperty(name="Missing", min=0, options={"HIDDEN"},
                         description="Packets in a row without this track id (Hand over lost performers)")


class TakePart(bpy.types.PropertyGroup):
    """One performer's Action of the last take (several performers record one Action each)."""

    performer: StringProperty(name="Performer", description="Label of the performer in names: P<track id>")
    action: PointerProperty(name="Action", type=bpy.types.Action)
    armature: PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature)


class MocapSettings(bpy.types.PropertyGroup):
    """Connection, person, recording settings and the receiver's live status."""

    # Connection
    host: StringProperty(name="Host", default=DEFAULT_HOST,
                         description="Address to listen on; 127.0.0.1 accepts packets from this computer only")
    port: IntProperty(name="Port", default=DEFAULT_PORT, min=1, max=65535,
                      description="UDP port the pose server sends to (pose-server --udp 127.0.0.1:PORT)")
    token: StringProperty(name="Token", subtype="PASSWORD",
                          description="Shared secret the server puts in meta.token; required unless listening "
                                      "on 127.0.0.1 (then other computers could send poses)")
    status: EnumProperty(name="Status", items=[
        ("STOPPED", "Stopped", "Not listening"),
        ("LISTENING", "Listening", "Socket open, no packets in the last second"),
        ("RECEIVING", "Receiving", "Packets are arriving"),
        ("ERROR", "Error", "The receiver could not start; see the last error"),
    ], default="STOPPED")

    # Live status, written by the tick
    received: IntProperty(name="Received", description="Datagrams received")
    applied: IntProperty(name="Applied", description="Packets applied to the armature")
    invalid: IntProperty(name="Invalid", description="Datagrams rejected by the packet validator")
    stale: IntProperty(name="Stale", description="Packets older than one already received (out of order)")
    dropped: IntProperty(name="Dropped", description="Valid packets replaced by a newer one before a tick used them")
    packets_per_s: FloatProperty(name="Packets/s", precision=1)
    fps: FloatProperty(name="Server FPS", precision=1, description="Frame rate reported by the pose server")
    latency_ms: FloatProperty(name="Latency", precision=1, description="Capture-to-apply delay in milliseconds")
    last_error: StringProperty(name="Last error")

    # What to drive
    target: PointerProperty(name="Armature", type=bpy.types.Object, poll=_is_armature,
                            description="Armature driven by the incoming poses and recorded into takes")
    person_mode: EnumProperty(name="Person", default="LARGEST", items=[
        ("LARGEST", "Largest", "The person with the largest box"),
        ("FIRST", "First", "The first person in each packet"),
        ("ID", "Track ID", "A fixed track id"),
    ])
    person_id: IntProperty(name="Track ID", min=0, description="Track id to follow when Person is Track ID")
    rig: PointerProperty(type=RigSettings)
    bindings: CollectionProperty(type=PerformerBinding,
                                 description="Several performers: each enabled binding drives its armature from "
                                             "its track id (replaces Armature/Person while any is enabled)")
    binding_index: IntProperty(name="Active binding")
    handover: BoolProperty(name="Hand over lost performers", default=False,
                           description="When a bound id has been missing for a while and a person nobody is bound "
                                       "to is tracked, bind that person's id to the armature (the tracker lost the "
                                       "performer and found them again under a new id). No rig is ever created")
    handover_after: IntProperty(name="After", default=30, min=1, soft_max=300,
                                description="Packets a bound id must be missing before its armature is handed over")
    tracked_ids: StringProperty(name="Tracked ids", description="Track ids in the newest packet (live status)")
    rig_spacing: FloatProperty(name="Spacing", default=0.0, min=0.0, soft_max=5.0, unit="LENGTH",
                               description="Create capture rigs for everyone: 0 puts every rig at the origin, so "
                                           "each performer stands where the server lifted them; more moves each "
                                           "further rig this far along +X (side by side)")
    foot_lock: BoolProperty(name="Pin planted feet", default=True,
                            description="Keep a foot the server reports as planted (protocol v3 contacts) where it "
                                        "was planted, through the IK rig: no foot skating in takes")
    pin_at: FloatProperty(name="Pin at", default=0.6, min=0.2, max=0.95, step=5,
                          description="Contact probability from which a foot is pinned (released 0.2 lower). "
                                      "Lower pins more of the frames a foot is planted (validation mocap, 3 px: "
                                      "0.6 pins 79 %, 0.4 pins 90 %) but pins more frames it is not, which "
                                      "costs the pose more (4 -> 10 mm at the ankle); see docs/lifting.md")
    settle_feet: FloatProperty(name="Settle", default=0.0, min=0.0, max=1.0, step=10,
                               description="Let a foot about to be pinned decelerate into its pin instead of stopping "
                                           "dead (1 = fully). Less foot skating in takes (validation mocap, 3 px: "
                                           "6.1 -> 5.1 mm/frame at 1), for planted feet placed a little behind the "
                                           "measured ones (3 mm more error at the ankle); see docs/lifting.md")

    # Recording
    is_recording: BoolProperty(name="Recording", default=False)
    recorded_samples: IntProperty(name="Samples", description="Poses captured in the take being recorded")
    last_take: StringProperty(name="Last take", description="Action written by the last recording or import; "
                                                            "with several performers, the take's name")
    take_parts: CollectionProperty(type=TakePart, description="Actions of the last take with several performers")
    reduce_keys: BoolProperty(name="Reduce keys", default=False,
                              description="Drop keys that straight lines between their neighbours reproduce")
    reduce_tolerance: FloatProperty(name="Tolerance", default=0.001, min=0.0, soft_max=0.05, precision=4,
                                    description="Largest error a dropped key may have (metres, radians, units)")


classes = (PerformerBinding, TakePart, MocapSettings)


def register_scene_property() -> None:
    bpy.types.Scene.vitpose_mocap = PointerProperty(type=MocapSettings)


def unregister_scene_property() -> None:
    if hasattr(bpy.types.Scene, "vitpose_mocap"):
        del bpy.types.Scene.vitpose_mocap
